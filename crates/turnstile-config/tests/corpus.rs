//! The corpus: real node configurations, each of which must load, or be refused only for
//! Crossbar features Turnstile does not have (yet), every error naming the feature.
//!
//! 1. `tests/corpus/`: configurations written here in the shapes people use (Crossbar's
//!    `crossbar init` template, crossbar-examples), feature by feature. Each must load.
//! 2. Every node configuration shipped in Crossbar's own source package on PyPI
//!    (`crossbar==26.10.1`, the version Turnstile is checked against). It is not committed: on
//!    first use it is downloaded with `python3 -m pip download --no-deps --no-binary :all:` and
//!    its JSON and YAML files are extracted into `<target dir>/crossbar-sdist/`, where later runs
//!    find them (set `CROSSBAR_SDIST_DIR` to use a directory already on disk). Without network
//!    the test says so and passes. A node configuration is a file whose top level is an object
//!    with `workers` or `controller`. What Crossbar 26.10.1 itself says of each file (its
//!    `check_config_file`, run with each personality) is recorded in [`CROSSBAR_VERDICTS`]:
//!    every file Crossbar accepts must load or be refused only with
//!    [`Problem::Unsupported`] errors; the tally (loaded, refused by feature) is printed (run
//!    with `--nocapture`) and recorded in the README.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use turnstile_config::{load_file_with_env, ConfigError, Format, Problem};

const CROSSBAR_VERSION: &str = "26.10.1";

/// The variables the own corpus reads (`$PORT`, `${JOE_TICKET}`, ...).
fn corpus_env(name: &str) -> Option<String> {
    let vars: HashMap<&str, &str> = [
        ("PORT", "8080"),
        ("JOE_TICKET", "joe-ticket"),
        ("BACKEND_TICKET", "backend-ticket"),
    ]
    .into();
    vars.get(name).map(|v| v.to_string())
}

fn load(path: &Path) -> Result<turnstile_config::NodeConfig, ConfigError> {
    load_file_with_env(path, &corpus_env)
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else if Format::from_path(&p).is_some() {
            out.push(p);
        }
    }
}

#[test]
fn own_corpus_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut paths = Vec::new();
    files(&dir, &mut paths);
    assert!(paths.len() >= 9, "the corpus is in {}", dir.display());
    for path in &paths {
        let config = load(path).unwrap_or_else(|e| panic!("{e}"));
        println!(
            "loaded {}: {} router workers, {} keys without effect",
            path.file_name().unwrap().to_string_lossy(),
            config.workers.len(),
            config.inapplicable.len()
        );
    }
}

// ===== Crossbar's own configurations =====

/// What Crossbar 26.10.1 says of a configuration file of its source package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// `crossbar check` (the default, standalone personality) accepts it.
    Accepted,
    /// Only the `edge` or `master` personality (Crossbar.io FX, with Fabric) accepts it.
    AcceptedByFabric,
    /// Every personality refuses it (the reason, in Crossbar's words).
    Refused(&'static str),
}

/// Every node configuration of the crossbar 26.10.1 sdist (paths inside
/// `crossbar-26.10.1/`), with Crossbar's own verdict.
const CROSSBAR_VERDICTS: &[(&str, Verdict)] = &[
    ("docs/code/config.json", Verdict::Accepted),
    ("src/crossbar/edge/node/config/bare.json", Verdict::Accepted),
    (
        "src/crossbar/edge/node/config/default.json",
        Verdict::Refused("encountered unknown attribute 'max_message_size' in RawSocket transport"),
    ),
    (
        "src/crossbar/edge/node/config/pairme.json",
        Verdict::AcceptedByFabric,
    ),
    ("src/crossbar/master/node/config.json", Verdict::AcceptedByFabric),
    ("src/crossbar/network/node/config.json", Verdict::AcceptedByFabric),
    (
        "src/crossbar/node/templates/default/.crossbar/config.json",
        Verdict::Accepted,
    ),
    ("src/crossbar/test/test_config.json", Verdict::AcceptedByFabric),
    (
        "src/crossbar/test/test_config1.json",
        Verdict::Refused("Configuration too old: version 1 (a fragment to merge)"),
    ),
    (
        "src/crossbar/test/test_config1_merged.json",
        Verdict::AcceptedByFabric,
    ),
    (
        "src/crossbar/test/test_config2.json",
        Verdict::Refused("Configuration too old: version 1 (a fragment to merge)"),
    ),
    (
        "src/crossbar/test/test_config2_merged.json",
        Verdict::AcceptedByFabric,
    ),
    (
        "src/crossbar/test/test_config3.json",
        Verdict::Refused("Configuration too old: version 1 (a fragment to merge)"),
    ),
    (
        "src/crossbar/test/test_config3_merged.json",
        Verdict::AcceptedByFabric,
    ),
    ("test/cf1/.crossbar/config-empty.json", Verdict::AcceptedByFabric),
    ("test/cf1/.crossbar/config.json", Verdict::AcceptedByFabric),
    ("test/cf2/.crossbar/config-empty.json", Verdict::AcceptedByFabric),
    ("test/cf2/.crossbar/config.json", Verdict::AcceptedByFabric),
    ("test/cf3/.crossbar/config-empty.json", Verdict::AcceptedByFabric),
    ("test/cf3/.crossbar/config.json", Verdict::AcceptedByFabric),
    ("test/cf4/.crossbar/config-empty.json", Verdict::AcceptedByFabric),
    ("test/cf4/.crossbar/config.json", Verdict::AcceptedByFabric),
    (
        "test/cfc/.crossbar/config-tls.json",
        Verdict::Refused("missing mandatory attribute 'type' in worker item (master); unknown 'fabric-center' (others)"),
    ),
    ("test/cfc/.crossbar/config.json", Verdict::AcceptedByFabric),
    ("test/full/.crossbar/config-manhole.json", Verdict::Accepted),
    ("test/full/.crossbar/config.json", Verdict::Accepted),
    (
        "test/test_backend/cf1/.crossbar/config.json",
        Verdict::AcceptedByFabric,
    ),
    (
        "test/test_backend/cf2/.crossbar/config.json",
        Verdict::AcceptedByFabric,
    ),
    ("test/test_hostmon/.crossbar/config.json", Verdict::AcceptedByFabric),
    (
        "test/test_pevents/crossbar/.crossbar/config.json",
        Verdict::AcceptedByFabric,
    ),
    (
        "test/test_xbr_market/.crossbar/config.json",
        Verdict::Refused("invalid worker type \"xbrmarket\""),
    ),
    (
        "test/test_xbr_marketmaker/crossbar/.crossbar/config.json",
        Verdict::Refused("missing attribute \"options.extra\" in XBR markets worker (edge); unknown 'enable_docker' / 'fabric' (others)"),
    ),
    (
        "test/test_xbr_network/.crossbar/config-edge.json",
        Verdict::AcceptedByFabric,
    ),
    ("test/test_xbr_network/.crossbar/config.json", Verdict::AcceptedByFabric),
];

fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        Some(d) => workspace_dir().join(d),
        None => workspace_dir().join("target"),
    }
}

/// Extracts every `.json`, `.yaml` and `.yml` file of the sdist (argv[1]) into argv[2], keeping
/// the paths below the sdist's top directory.
const EXTRACT: &str = r#"
import os, sys, tarfile
sdist, dest = sys.argv[1], sys.argv[2]
n = 0
with tarfile.open(sdist) as t:
    for m in t.getmembers():
        if not m.isfile() or not m.name.endswith((".json", ".yaml", ".yml")):
            continue
        rel = m.name.split("/", 1)[1] if "/" in m.name else m.name
        if not rel or rel.startswith("/") or ".." in rel.split("/"):
            continue
        out = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with t.extractfile(m) as src, open(out, "wb") as f:
            f.write(src.read())
        n += 1
if n == 0:
    sys.exit("no JSON or YAML files in " + sdist)
print(f"extracted {n} JSON and YAML files")
"#;

/// The directory with the sdist's JSON and YAML files, downloading them first if needed;
/// `None` (with the reason) when PyPI cannot be reached.
fn sdist_dir() -> Result<PathBuf, String> {
    if let Some(d) = std::env::var_os("CROSSBAR_SDIST_DIR") {
        return Ok(PathBuf::from(d));
    }
    let dir = target_dir().join(format!("crossbar-sdist/{CROSSBAR_VERSION}"));
    if dir.join("src").is_dir() {
        return Ok(dir);
    }
    let tmp = target_dir().join(format!("crossbar-sdist.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).expect("create a temporary directory in the target dir");
    eprintln!("downloading crossbar=={CROSSBAR_VERSION} (sdist) for its node configurations");
    let out = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--no-binary", ":all:"])
        .args(["--quiet", "--disable-pip-version-check"])
        .arg(format!("crossbar=={CROSSBAR_VERSION}"))
        .arg("-d")
        .arg(&tmp)
        .output()
        .expect("run `python3 -m pip download` (python3 with pip is needed for this test)");
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let _ = fs::remove_dir_all(&tmp);
        let offline = [
            "NewConnectionError",
            "Temporary failure in name resolution",
            "Network is unreachable",
            "Connection refused",
            "Max retries exceeded",
            "No matching distribution found",
            "timed out",
        ]
        .iter()
        .any(|needle| stderr.contains(needle));
        if offline {
            return Err(stderr);
        }
        panic!("`pip download crossbar=={CROSSBAR_VERSION}` failed:\n{stderr}");
    }
    let sdist = tmp.join(format!("crossbar-{CROSSBAR_VERSION}.tar.gz"));
    let extracted = tmp.join("files");
    let status = Command::new("python3")
        .arg("-c")
        .arg(EXTRACT)
        .arg(&sdist)
        .arg(&extracted)
        .status()
        .expect("run python3 to extract the sdist");
    assert!(status.success(), "extracting {} failed", sdist.display());
    fs::create_dir_all(dir.parent().unwrap()).unwrap();
    // Another test run may have got there first: keep whichever is in place.
    if fs::rename(&extracted, &dir).is_err() && !dir.join("src").is_dir() {
        panic!("could not move the files into {}", dir.display());
    }
    let _ = fs::remove_dir_all(&tmp);
    Ok(dir)
}

/// Whether a file is a node configuration: an object with `workers` or `controller` at the top.
fn is_node_config(path: &Path) -> bool {
    let Ok(text) = fs::read_to_string(path) else {
        return false;
    };
    let doc: Option<serde_json::Value> = match Format::from_path(path) {
        Some(Format::Json) => serde_json::from_str(&text).ok(),
        Some(Format::Yaml) => serde_saphyr::from_str(&text).ok(),
        None => None,
    };
    doc.and_then(|d| d.as_object().cloned())
        .is_some_and(|o| o.contains_key("workers") || o.contains_key("controller"))
}

/// The feature an `Unsupported` message names, for the tally.
fn feature(message: &str) -> String {
    let named = [
        ("Fabric", "Crossbar.io Fabric (not planned)"),
        ("XBR", "Crossbar.io Fabric (not planned)"),
        ("Docker", "Crossbar.io Fabric (not planned)"),
        ("IPFS", "Crossbar.io Fabric (not planned)"),
        ("manhole", "manholes (not planned)"),
        (
            "controller connections",
            "controller connections (not planned)",
        ),
        ("database connections", "database connections (not planned)"),
        ("worker type", "worker types other than router (issue 11)"),
        ("router components", "router components (issue 11)"),
        ("TLS", "TLS (issue 10, a colleague's branch)"),
        ("wss://", "TLS (issue 10, a colleague's branch)"),
        (
            "transport type",
            "transport types (issue 10: universal, ...)",
        ),
        ("WebSocket option", "WebSocket options (issue 10)"),
        ("compression", "WebSocket options (issue 10)"),
        ("WebSocket status page", "WebSocket options (issue 10)"),
        ("Origin header", "WebSocket options (issue 10)"),
        ("path service type", "web path services (issue 10)"),
        (
            "directory listings",
            "static path service options (issue 10)",
        ),
        (
            "static path service option",
            "static path service options (issue 10)",
        ),
        ("Python package", "static path service options (issue 10)"),
        ("HSTS", "web transport options (issue 10)"),
        ("access logging", "web transport options (issue 10)"),
        ("web transport option", "web transport options (issue 10)"),
        (
            "authentication is not supported",
            "authentication methods (issue 10: tls, cookie)",
        ),
        ("cookie", "cookie tracking (issue 10)"),
        ("cfxdb", "persistent realm stores (not planned)"),
        ("router-to-router", "router-to-router links (not planned)"),
        ("bridging the meta API", "bridge_meta_api (not planned)"),
    ];
    named
        .iter()
        .find(|(needle, _)| message.contains(needle))
        .map_or_else(|| message.to_owned(), |(_, f)| f.to_string())
}

#[test]
fn crossbar_sdist_configurations() {
    let dir = match sdist_dir() {
        Ok(dir) => dir,
        Err(reason) => {
            eprintln!(
                "SKIPPED: crossbar=={CROSSBAR_VERSION} could not be downloaded from PyPI \
                 (offline?):\n{reason}"
            );
            return;
        }
    };
    let mut all = Vec::new();
    files(&dir, &mut all);
    let configs: Vec<PathBuf> = all.into_iter().filter(|p| is_node_config(p)).collect();
    let relative = |p: &Path| {
        p.strip_prefix(&dir)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/")
    };
    let verdicts: BTreeMap<&str, Verdict> = CROSSBAR_VERDICTS.iter().copied().collect();
    let mut found: Vec<String> = configs.iter().map(|p| relative(p)).collect();
    found.sort();
    let known: Vec<String> = verdicts.keys().map(|k| k.to_string()).collect();
    assert_eq!(
        found, known,
        "the node configurations of the sdist and CROSSBAR_VERDICTS differ"
    );

    // Crossbar-accepted files: loaded, or refused by feature (the feature -> files).
    let mut loaded: Vec<String> = Vec::new();
    let mut refused: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut not_accepted_by_crossbar: Vec<String> = Vec::new();
    let mut wrong: Vec<String> = Vec::new();
    let mut by_file: Vec<String> = Vec::new();
    for path in &configs {
        let rel = relative(path);
        let verdict = verdicts[rel.as_str()];
        let result = load(path);
        if let Verdict::Refused(reason) = verdict {
            let ours = match &result {
                Ok(_) => "Turnstile loads it".to_owned(),
                Err(e) => format!("Turnstile: {}", e.to_string().lines().next().unwrap_or("")),
            };
            not_accepted_by_crossbar.push(format!("{rel} (Crossbar: {reason}; {ours})"));
            continue;
        }
        let label = match verdict {
            Verdict::AcceptedByFabric => format!("{rel} [Crossbar.io FX only]"),
            _ => rel.clone(),
        };
        match result {
            Ok(_) => loaded.push(label),
            Err(e) => {
                let issues = e.issues();
                let mut features: Vec<String> = Vec::new();
                for (at, problem) in &issues {
                    match problem {
                        Problem::Unsupported { message, .. } => {
                            let f = feature(message);
                            if !features.contains(&f) {
                                features.push(f);
                            }
                        }
                        other => wrong.push(format!("{rel}: {at}: {other}")),
                    }
                }
                if issues.is_empty() {
                    wrong.push(format!("{rel}: {e}"));
                }
                for f in &features {
                    refused.entry(f.clone()).or_default().push(label.clone());
                }
                by_file.push(format!("{label}: {}", features.join("; ")));
            }
        }
    }

    let accepted = verdicts
        .values()
        .filter(|v| !matches!(v, Verdict::Refused(_)))
        .count();
    println!(
        "crossbar=={CROSSBAR_VERSION} sdist: {} node configurations, {accepted} accepted by \
         Crossbar ({} by `crossbar check`, the rest only by Crossbar.io FX's edge/master)",
        configs.len(),
        verdicts
            .values()
            .filter(|v| **v == Verdict::Accepted)
            .count()
    );
    println!("loaded: {}", loaded.len());
    for l in &loaded {
        println!("    {l}");
    }
    println!("refused: {}, by feature named:", accepted - loaded.len());
    for (f, files) in &refused {
        println!("  {f}: {}", files.len());
        for file in files {
            println!("    {file}");
        }
    }
    println!("refused, each with every feature it needs:");
    for line in &by_file {
        println!("    {line}");
    }
    println!(
        "not accepted by Crossbar itself: {}",
        not_accepted_by_crossbar.len()
    );
    for n in &not_accepted_by_crossbar {
        println!("    {n}");
    }
    assert!(
        wrong.is_empty(),
        "Crossbar-accepted configurations refused for something other than a missing \
         feature:\n{}",
        wrong.join("\n")
    );
}
