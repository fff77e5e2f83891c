use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::EncodePublicKey;
use rsa::traits::PublicKeyParts;

use super::*;

#[test]
fn arguments_encode_as_protobuf_length_delimited_fields() {
    let args =
        Arguments { hash_function: "sha256", public_key: &[1, 2], signature: &[3], text: &[] };
    let mut expected = vec![0x0a, 6];
    expected.extend_from_slice(b"sha256");
    expected.extend_from_slice(&[0x12, 2, 1, 2, 0x1a, 1, 3, 0x22, 0]);
    assert_eq!(args.encode(), expected);

    // Lengths of 128 and more take a multi-byte varint: 300 = 0xac 0x02.
    let text = vec![7u8; 300];
    let args = Arguments { hash_function: "", public_key: &[], signature: &[], text: &text };
    let encoded = args.encode();
    assert_eq!(&encoded[..9], &[0x0a, 0, 0x12, 0, 0x1a, 0, 0x22, 0xac, 0x02]);
    assert_eq!(encoded.len(), 9 + 300);
}

#[test]
fn verdicts_decode_and_skip_unknown_fields() {
    assert_eq!(decode_verdict(&[]), Ok(Verdict::default()));
    assert_eq!(decode_verdict(&[0x08, 0x01]), Ok(Verdict { result: true, error: String::new() }));
    let mut bytes = vec![0x08, 0x00, 0x12, 5];
    bytes.extend_from_slice(b"nope!");
    assert_eq!(decode_verdict(&bytes), Ok(Verdict { result: false, error: "nope!".to_owned() }));
    // A varint field 3, a fixed32 field 4, a fixed64 field 6 and a bytes field 7, then result.
    let mut bytes = vec![0x18, 0x96, 0x01, 0x25, 1, 2, 3, 4, 0x31, 1, 2, 3, 4, 5, 6, 7, 8];
    bytes.extend_from_slice(&[0x3a, 2, 0xff, 0xfe, 0x08, 0x01]);
    assert!(decode_verdict(&bytes).expect("decodes").result);
}

#[test]
fn malformed_verdicts_are_errors_not_panics() {
    assert_eq!(decode_verdict(&[0x08]), Err(DecodeError::Truncated));
    assert_eq!(decode_verdict(&[0x12, 5, b'a']), Err(DecodeError::Truncated));
    assert_eq!(decode_verdict(&[0x12, 0xff, 0xff, 0xff, 0xff, 0x0f]), Err(DecodeError::Truncated));
    assert_eq!(decode_verdict(&[0x0b]), Err(DecodeError::WireType(3)));
    assert_eq!(
        decode_verdict(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        Err(DecodeError::VarintTooLong)
    );
    assert_eq!(decode_verdict(&[0x12, 1, 0xff]), Err(DecodeError::NotUtf8));
    for len in 0..64u8 {
        let bytes: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37).wrapping_add(len)).collect();
        let _ = decode_verdict(&bytes);
    }
}

#[test]
fn only_a_failed_digest_check_is_a_bad_signature() {
    let verdict = |result: bool, error: &str| Verdict { result, error: error.to_owned() };
    assert!(verdict(false, "Failed to verify digest. Error code: 0").is_bad_signature());
    assert!(!verdict(true, "").is_bad_signature());
    assert!(!verdict(false, "Failed to initialize digest verify.").is_bad_signature());
    assert!(!verdict(false, "md5 is not supported.").is_bad_signature());
}

/// The key encoding agrees with RustCrypto's `rsa` crate, an independent DER encoder.
#[test]
fn rsa_keys_encode_as_the_subject_public_key_info_other_encoders_write() {
    for key in [testkit::RsaKey::fixture_2048(), testkit::RsaKey::fixture_3072()] {
        let pem = key.private_pem();
        let private = <rsa::RsaPrivateKey as rsa::pkcs8::DecodePrivateKey>::from_pkcs8_pem(&pem)
            .expect("PKCS#8");
        let public = private.to_public_key();
        let (n, e) = (public.n().to_bytes_be(), public.e().to_bytes_be());
        let spki = public.to_public_key_der().expect("SPKI");
        assert_eq!(rsa_spki_der(&n, &e), spki.as_bytes());
        // Leading zero bytes, as some JWKS publish `n` and `e`, change nothing.
        let padded_n: Vec<u8> = [0u8].iter().chain(&n).copied().collect();
        assert_eq!(rsa_spki_der(&padded_n, &[0, 1, 0, 1]), spki.as_bytes());
        // The BIT STRING holds the PKCS#1 RSAPublicKey.
        let pkcs1 = public.to_pkcs1_der().expect("PKCS#1");
        assert!(spki.as_bytes().ends_with(pkcs1.as_bytes()));
    }
}

#[test]
fn der_integers_are_minimal_and_unsigned() {
    let integer = |v: &[u8]| {
        let mut out = Vec::new();
        der_unsigned_integer(&mut out, v);
        out
    };
    assert_eq!(integer(&[]), [0x02, 1, 0]);
    assert_eq!(integer(&[0, 0]), [0x02, 1, 0]);
    assert_eq!(integer(&[1, 0, 1]), [0x02, 3, 1, 0, 1]);
    assert_eq!(integer(&[0x80]), [0x02, 2, 0, 0x80]);
    assert_eq!(der_wrap(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
    assert_eq!(der_wrap(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
}

/// A host that answers with a queue of canned results and records what it was told.
#[derive(Default)]
struct FakeHost {
    answers: std::cell::RefCell<Vec<Result<Vec<u8>, CallError>>>,
    calls: std::cell::RefCell<Vec<Vec<u8>>>,
    counted: std::cell::RefCell<Vec<Outcome>>,
    notes: std::cell::RefCell<Vec<String>>,
}

impl FakeHost {
    fn answering(answers: Vec<Result<Vec<u8>, CallError>>) -> Self {
        let host = Self::default();
        *host.answers.borrow_mut() = answers.into_iter().rev().collect();
        host
    }
}

impl Host for &FakeHost {
    fn call(&self, arguments: &[u8]) -> Result<Vec<u8>, CallError> {
        self.calls.borrow_mut().push(arguments.to_vec());
        self.answers.borrow_mut().pop().unwrap_or(Err(CallError::Failed("no answer".to_owned())))
    }

    fn count(&self, outcome: Outcome) {
        self.counted.borrow_mut().push(outcome);
    }

    fn note(&self, message: &str) {
        self.notes.borrow_mut().push(message.to_owned());
    }
}

fn verdict_bytes(result: bool, error: &str) -> Vec<u8> {
    let mut out = vec![0x08, u8::from(result), 0x12, u8::try_from(error.len()).expect("short")];
    out.extend_from_slice(error.as_bytes());
    out
}

const BAD: &str = "Failed to verify digest. Error code: 0";

#[test]
fn envoy_answers_become_outcomes_and_the_call_carries_the_key_as_spki() {
    let host = FakeHost::answering(vec![
        Ok(verdict_bytes(true, "")),
        Ok(verdict_bytes(false, BAD)),
        Ok(verdict_bytes(false, "Failed to initialize digest verify.")),
        Err(CallError::Failed("InternalFailure".to_owned())),
        Ok(vec![0x0b]),
    ]);
    let native = NativeRsa::new(&host);
    let check = || native.verify("sha256", &[0xc5; 256], &[1, 0, 1], b"a.b", &[9; 256]);
    assert_eq!(check(), Outcome::Valid);
    assert_eq!(check(), Outcome::Invalid);
    // Envoy not doing the check is never taken for a bad signature.
    assert_eq!(check(), Outcome::NotChecked);
    assert_eq!(check(), Outcome::NotChecked);
    assert_eq!(check(), Outcome::NotChecked);
    assert!(!native.is_absent());

    let expected = Arguments {
        hash_function: "sha256",
        public_key: &rsa_spki_der(&[0xc5; 256], &[1, 0, 1]),
        signature: &[9; 256],
        text: b"a.b",
    }
    .encode();
    assert_eq!(host.calls.borrow()[0], expected);
    assert_eq!(host.counted.borrow().len(), 5);
    // Told once that Envoy checks, once that it did not check something.
    assert_eq!(host.notes.borrow().len(), 2, "{:?}", host.notes.borrow());
}

#[test]
fn without_the_function_envoy_is_asked_once_and_the_filter_checks() {
    let host = FakeHost::answering(vec![Err(CallError::NotFound)]);
    let native = NativeRsa::new(&host);
    for _ in 0..3 {
        assert_eq!(native.verify("sha256", &[1], &[3], b"m", b"s"), Outcome::NotChecked);
    }
    assert!(native.is_absent());
    assert_eq!(host.calls.borrow().len(), 1, "asked once");
    assert_eq!(host.notes.borrow().len(), 1, "logged once");
    assert!(host.notes.borrow()[0].contains("no verify_signature"));
}
