//! `endpoint.tls.ciphers`: an OpenSSL cipher string (as Crossbar passes it to OpenSSL) read into
//! the cipher suites Turnstile's TLS library (rustls) implements.
//!
//! rustls has nine suites, all with ephemeral (EC)DH key exchange and AEAD encryption: three for
//! TLS 1.3 and six for TLS 1.2. A cipher string selects among them the way OpenSSL would among
//! its own: words joined by `:` (or `,` or spaces), each a suite name (`ECDHE-RSA-AES128-GCM-SHA256`,
//! or the IANA name) or an alias (`HIGH`, `ECDHE`, `aRSA`, `AESGCM`, ...), combined with `+`;
//! `!word` removes suites for good, `-word` removes them until a later word adds them again, and
//! `+word` (reordering in OpenSSL) and `@STRENGTH`/`@SECLEVEL=n` change no set and are accepted.
//! As in OpenSSL, TLS 1.3 suites are not governed by the TLS 1.2 cipher list: unless the string
//! names TLS 1.3 suites itself (by their IANA names), all three stay on.
//!
//! Words rustls has no suite for (`DHE`, `RC4`, `3DES`, `CBC` suites, typos...) select nothing;
//! they are reported in [`TlsCiphers::unmatched`] for the router to log. A string that leaves no
//! TLS 1.2 or TLS 1.3 suite at all is refused.

use std::fmt;

/// A cipher suite rustls implements (with its `ring` provider).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TlsSuite {
    /// TLS 1.3 `TLS_AES_256_GCM_SHA384`.
    Tls13Aes256GcmSha384,
    /// TLS 1.3 `TLS_AES_128_GCM_SHA256`.
    Tls13Aes128GcmSha256,
    /// TLS 1.3 `TLS_CHACHA20_POLY1305_SHA256`.
    Tls13Chacha20Poly1305Sha256,
    /// TLS 1.2 `ECDHE-ECDSA-AES256-GCM-SHA384`.
    EcdheEcdsaAes256GcmSha384,
    /// TLS 1.2 `ECDHE-ECDSA-AES128-GCM-SHA256`.
    EcdheEcdsaAes128GcmSha256,
    /// TLS 1.2 `ECDHE-ECDSA-CHACHA20-POLY1305`.
    EcdheEcdsaChacha20Poly1305,
    /// TLS 1.2 `ECDHE-RSA-AES256-GCM-SHA384`.
    EcdheRsaAes256GcmSha384,
    /// TLS 1.2 `ECDHE-RSA-AES128-GCM-SHA256`.
    EcdheRsaAes128GcmSha256,
    /// TLS 1.2 `ECDHE-RSA-CHACHA20-POLY1305`.
    EcdheRsaChacha20Poly1305,
}

impl TlsSuite {
    /// Every suite, TLS 1.3 first (rustls' order of preference).
    pub const ALL: [TlsSuite; 9] = [
        TlsSuite::Tls13Aes256GcmSha384,
        TlsSuite::Tls13Aes128GcmSha256,
        TlsSuite::Tls13Chacha20Poly1305Sha256,
        TlsSuite::EcdheEcdsaAes256GcmSha384,
        TlsSuite::EcdheEcdsaAes128GcmSha256,
        TlsSuite::EcdheEcdsaChacha20Poly1305,
        TlsSuite::EcdheRsaAes256GcmSha384,
        TlsSuite::EcdheRsaAes128GcmSha256,
        TlsSuite::EcdheRsaChacha20Poly1305,
    ];

    /// The IANA name (what rustls calls it), e.g. `TLS13_AES_128_GCM_SHA256` is
    /// `TLS_AES_128_GCM_SHA256` here.
    pub fn iana_name(self) -> &'static str {
        match self {
            TlsSuite::Tls13Aes256GcmSha384 => "TLS_AES_256_GCM_SHA384",
            TlsSuite::Tls13Aes128GcmSha256 => "TLS_AES_128_GCM_SHA256",
            TlsSuite::Tls13Chacha20Poly1305Sha256 => "TLS_CHACHA20_POLY1305_SHA256",
            TlsSuite::EcdheEcdsaAes256GcmSha384 => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            TlsSuite::EcdheEcdsaAes128GcmSha256 => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            TlsSuite::EcdheEcdsaChacha20Poly1305 => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            TlsSuite::EcdheRsaAes256GcmSha384 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            TlsSuite::EcdheRsaAes128GcmSha256 => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            TlsSuite::EcdheRsaChacha20Poly1305 => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        }
    }

    /// OpenSSL's name (for TLS 1.3 suites OpenSSL uses the IANA name).
    pub fn openssl_name(self) -> &'static str {
        match self {
            TlsSuite::EcdheEcdsaAes256GcmSha384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
            TlsSuite::EcdheEcdsaAes128GcmSha256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
            TlsSuite::EcdheEcdsaChacha20Poly1305 => "ECDHE-ECDSA-CHACHA20-POLY1305",
            TlsSuite::EcdheRsaAes256GcmSha384 => "ECDHE-RSA-AES256-GCM-SHA384",
            TlsSuite::EcdheRsaAes128GcmSha256 => "ECDHE-RSA-AES128-GCM-SHA256",
            TlsSuite::EcdheRsaChacha20Poly1305 => "ECDHE-RSA-CHACHA20-POLY1305",
            tls13 => tls13.iana_name(),
        }
    }

    /// Whether this is a TLS 1.3 suite.
    pub fn is_tls13(self) -> bool {
        matches!(
            self,
            TlsSuite::Tls13Aes256GcmSha384
                | TlsSuite::Tls13Aes128GcmSha256
                | TlsSuite::Tls13Chacha20Poly1305Sha256
        )
    }

    /// Whether OpenSSL's cipher-string `word` (a name or an alias) selects this suite. Aliases of
    /// OpenSSL that select only suites rustls lacks (`DHE`, `kRSA`, `RC4`, ...) select none.
    fn matches(self, word: &str) -> bool {
        if word.eq_ignore_ascii_case(self.openssl_name())
            || word.eq_ignore_ascii_case(self.iana_name())
        {
            return true;
        }
        if self.is_tls13() {
            // TLS 1.3 suites are selected by name only (OpenSSL's `ciphersuites`, not `ciphers`).
            return false;
        }
        let name = self.openssl_name();
        let ecdsa = name.contains("ECDSA");
        let aes128 = name.contains("AES128");
        let aes256 = name.contains("AES256");
        let chacha = name.contains("CHACHA20");
        match word {
            // Every rustls suite is "high" strength, in DEFAULT, and TLS 1.2 (SSLv3 / TLSv1
            // aliases select suites of older versions, which these are not).
            "ALL" | "DEFAULT" | "HIGH" | "TLSv1.2" | "AEAD" | "FIPS" => true,
            "ECDHE" | "EECDH" | "kECDHE" | "kEECDH" | "ECDH" | "kECDH" => true,
            "aRSA" => !ecdsa,
            "aECDSA" | "ECDSA" => ecdsa,
            "AES" => aes128 || aes256,
            "AESGCM" => aes128 || aes256,
            "AES128" => aes128,
            "AES256" => aes256,
            "CHACHA20" => chacha,
            "SHA256" => name.ends_with("SHA256"),
            "SHA384" => name.ends_with("SHA384"),
            _ => false,
        }
    }
}

impl fmt::Display for TlsSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.openssl_name())
    }
}

/// `ciphers` of a TLS endpoint, read (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsCiphers {
    /// The string as configured.
    pub text: String,
    /// The suites it selects, in [`TlsSuite::ALL`]'s order; never empty.
    pub suites: Vec<TlsSuite>,
    /// Words of the string that select no suite rustls implements (for the log).
    pub unmatched: Vec<String>,
}

/// Why a cipher string is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherStringError {
    /// The string is empty (or only separators).
    #[error("the cipher string is empty")]
    Empty,
    /// Nothing selected.
    #[error(
        "the cipher string selects none of the cipher suites Turnstile's TLS library (rustls) \
         implements: {}",
        available()
    )]
    NothingSelected,
}

fn available() -> String {
    TlsSuite::ALL
        .iter()
        .map(|s| s.openssl_name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl TlsCiphers {
    /// Reads an OpenSSL cipher string.
    pub fn parse(text: &str) -> Result<TlsCiphers, CipherStringError> {
        let mut selected: Vec<TlsSuite> = Vec::new();
        let mut banned: Vec<TlsSuite> = Vec::new();
        let mut unmatched = Vec::new();
        let mut any_word = false;
        let mut tls13_named = false;
        for token in text
            .split([':', ',', ' ', ';'])
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            any_word = true;
            if token.starts_with('@') {
                // @STRENGTH sorts, @SECLEVEL=n sets a floor every rustls suite is above.
                continue;
            }
            let (op, expr) = match token.as_bytes()[0] {
                b'!' | b'-' | b'+' => (token.as_bytes()[0], &token[1..]),
                _ => (b' ', token),
            };
            let words: Vec<&str> = expr.split('+').filter(|w| !w.is_empty()).collect();
            let hits: Vec<TlsSuite> = TlsSuite::ALL
                .into_iter()
                .filter(|s| !words.is_empty() && words.iter().all(|w| s.matches(w)))
                .collect();
            if hits.is_empty() {
                unmatched.push(token.to_owned());
                continue;
            }
            match op {
                b'!' => {
                    banned.extend(&hits);
                    selected.retain(|s| !hits.contains(s));
                }
                b'-' => selected.retain(|s| !hits.contains(s)),
                // Reordering only: the set does not change.
                b'+' => {}
                _ => {
                    tls13_named |= hits.iter().any(|s| s.is_tls13());
                    for s in hits {
                        if !banned.contains(&s) && !selected.contains(&s) {
                            selected.push(s);
                        }
                    }
                }
            }
        }
        if !any_word {
            return Err(CipherStringError::Empty);
        }
        // As OpenSSL: the TLS 1.3 suites are separate from the (TLS 1.2) cipher list.
        if !tls13_named {
            for s in TlsSuite::ALL.into_iter().filter(|s| s.is_tls13()) {
                if !banned.contains(&s) && !selected.contains(&s) {
                    selected.push(s);
                }
            }
        }
        if !selected.iter().any(|s| !s.is_tls13()) && !tls13_named {
            // Only the implicit TLS 1.3 suites: the string itself selected nothing.
            return Err(CipherStringError::NothingSelected);
        }
        selected.sort();
        Ok(TlsCiphers {
            text: text.to_owned(),
            suites: selected,
            unmatched,
        })
    }

    /// The TLS 1.2 suites selected (none: TLS 1.2 is off).
    pub fn tls12(&self) -> impl Iterator<Item = TlsSuite> + '_ {
        self.suites.iter().copied().filter(|s| !s.is_tls13())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TlsSuite::*;

    fn suites(text: &str) -> Vec<TlsSuite> {
        TlsCiphers::parse(text).unwrap().suites
    }

    const TLS13: [TlsSuite; 3] = [
        Tls13Aes256GcmSha384,
        Tls13Aes128GcmSha256,
        Tls13Chacha20Poly1305Sha256,
    ];

    #[test]
    fn crossbar_documentation_string_selects_the_ecdhe_rsa_gcm_suites() {
        // The `ciphers` of Crossbar's TLS documentation and examples.
        let c = TlsCiphers::parse(
            "ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:\
             DHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-SHA256:DHE-RSA-AES128-SHA256:\
             ECDHE-RSA-AES256-SHA384:DHE-RSA-AES256-SHA384",
        )
        .unwrap();
        let mut want = TLS13.to_vec();
        want.extend([EcdheRsaAes256GcmSha384, EcdheRsaAes128GcmSha256]);
        assert_eq!(c.suites, want);
        assert_eq!(
            c.unmatched,
            [
                "DHE-RSA-AES128-GCM-SHA256",
                "DHE-RSA-AES256-GCM-SHA384",
                "ECDHE-RSA-AES128-SHA256",
                "DHE-RSA-AES128-SHA256",
                "ECDHE-RSA-AES256-SHA384",
                "DHE-RSA-AES256-SHA384"
            ]
        );
    }

    #[test]
    fn aliases_combine_with_plus_and_exclusions_hold() {
        let mut want = TLS13.to_vec();
        want.extend([EcdheEcdsaAes256GcmSha384, EcdheEcdsaAes128GcmSha256]);
        assert_eq!(suites("EECDH+aECDSA+AESGCM:!aNULL:!MD5"), want);
        // `!` is final; `-` can be undone by a later word.
        let mut all12: Vec<TlsSuite> = TlsSuite::ALL.into_iter().collect();
        all12.retain(|s| *s != EcdheRsaChacha20Poly1305 && *s != EcdheEcdsaChacha20Poly1305);
        assert_eq!(suites("HIGH:!CHACHA20:CHACHA20"), all12);
        assert_eq!(suites("HIGH:-CHACHA20:CHACHA20"), TlsSuite::ALL.to_vec());
        assert_eq!(suites("ALL:@STRENGTH"), TlsSuite::ALL.to_vec());
    }

    #[test]
    fn naming_tls13_suites_restricts_them() {
        assert_eq!(suites("TLS_AES_128_GCM_SHA256"), [Tls13Aes128GcmSha256]);
    }

    #[test]
    fn a_string_selecting_nothing_rustls_has_is_refused() {
        assert_eq!(
            TlsCiphers::parse("DHE-RSA-AES256-SHA:RC4-MD5"),
            Err(CipherStringError::NothingSelected)
        );
        assert_eq!(TlsCiphers::parse(" : "), Err(CipherStringError::Empty));
        let msg = CipherStringError::NothingSelected.to_string();
        assert!(msg.contains("ECDHE-RSA-AES128-GCM-SHA256"), "{msg}");
    }
}
