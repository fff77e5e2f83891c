#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

#[test]
fn arm_guid_reproduces_the_value_bicep_computed_for_guid_asdf() {
    // Azure/bicep src/Bicep.Core.Samples/Files/baselines_bicepparam/Expressions: the
    // parameters file compiles `guid('asdf')` with Microsoft's evaluator to this value.
    assert_eq!(arm_guid("asdf"), "228d27cc-6fdb-5934-b7ac-1efccebade04");
}

#[test]
fn arm_guid_is_a_version_5_rfc_4122_uuid() {
    for name in ["", "a", "/subscriptions/x-y-z", "ünïcode"] {
        let guid = arm_guid(name);
        assert_eq!(parse_guid(&guid).as_deref(), Some(guid.as_str()));
        assert_eq!(guid.as_bytes()[14], b'5', "{guid}");
        assert!(matches!(guid.as_bytes()[19], b'8' | b'9' | b'a' | b'b'), "{guid}");
    }
    // Python: uuid.uuid5(uuid.UUID('11fb06fb-712d-4ddd-98c7-e71bbd588830'), 'a-b')
    assert_eq!(arm_guid("a-b"), "2d796349-8c7e-55ec-9624-54ece82ed031");
}

#[test]
fn guids_parse_in_any_case_and_in_braces() {
    assert_eq!(
        parse_guid("8311E382-0749-4CB8-B61A-304F252E45EC").as_deref(),
        Some("8311e382-0749-4cb8-b61a-304f252e45ec")
    );
    assert_eq!(
        parse_guid("{8311e382-0749-4cb8-b61a-304f252e45ec}").as_deref(),
        Some("8311e382-0749-4cb8-b61a-304f252e45ec")
    );
    for bad in [
        "",
        "AcrPush",
        "8311e382074940cb8b61a304f252e45ec",
        "8311e382-0749-4cb8-b61a-304f252e45e",
        "8311e382-0749-4cb8-b61a-304f252e45eg",
        "8311e382_0749-4cb8-b61a-304f252e45ec",
    ] {
        assert_eq!(parse_guid(bad), None, "{bad}");
    }
}
