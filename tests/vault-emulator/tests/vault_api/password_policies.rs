//! Password policies: the sys/policies/password API (vault/logical_system.go
//! handlePoliciesPassword*, vault/logical_system_paths.go) and the policy language
//! and generator of helper/random (parser.go, rules.go, string_generator.go), as
//! documented at developer.hashicorp.com/vault/api-docs/system/policies-password and
//! developer.hashicorp.com/vault/docs/concepts/password-policies.

use crate::common::{assert_errors, multi, Res, Vault};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use std::collections::HashSet;

/// The docs' example: 20 characters, at least one lowercase, one uppercase, one
/// digit, and (here) two symbols from `!@#$%^&*`.
const POLICY: &str = r#"length = 20
rule "charset" {
  charset = "abcdefghijklmnopqrstuvwxyz"
  min-chars = 1
}
rule "charset" {
  charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
  min-chars = 1
}
rule "charset" {
  charset = "0123456789"
  min-chars = 1
}
rule "charset" {
  charset = "!@#$%^&*"
  min-chars = 2
}
"#;

/// `(charset, min-chars)` of `POLICY`.
const RULES: [(&str, usize); 4] = [
    ("abcdefghijklmnopqrstuvwxyz", 1),
    ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 1),
    ("0123456789", 1),
    ("!@#$%^&*", 2),
];

async fn put(vault: &Vault, name: &str, policy: &str) -> Res {
    vault
        .root_call(
            "PUT",
            &format!("/v1/sys/policies/password/{name}"),
            Some(json!({ "policy": policy })),
        )
        .await
}

async fn generate(vault: &Vault, name: &str) -> Res {
    vault
        .root_call(
            "GET",
            &format!("/v1/sys/policies/password/{name}/generate"),
            None,
        )
        .await
}

/// Asserts one password against a policy's length and rules: exact length, only
/// characters from the union of the charsets, and every rule's minimum met.
fn check(password: &str, length: usize, rules: &[(&str, usize)]) {
    let chars: Vec<char> = password.chars().collect();
    assert_eq!(chars.len(), length, "{password}");
    for c in &chars {
        assert!(
            rules.iter().any(|(set, _)| set.contains(*c)),
            "{c:?} is in no charset: {password}"
        );
    }
    for (set, min) in rules {
        let count = chars.iter().filter(|c| set.contains(**c)).count();
        assert!(count >= *min, "{count} < {min} from {set:?}: {password}");
    }
}

/// Generates `n` passwords, checks each, and checks they all differ.
async fn generate_checked(
    vault: &Vault,
    name: &str,
    n: usize,
    length: usize,
    rules: &[(&str, usize)],
) {
    let mut seen = HashSet::new();
    for _ in 0..n {
        let res = generate(vault, name).await;
        assert_eq!(res.status, 200, "{}", res.text);
        assert_eq!(res.json["mount_type"], "system");
        let data = res.json["data"].as_object().expect("data");
        assert_eq!(data.len(), 1, "only `password`: {}", res.text);
        let password = data["password"].as_str().expect("password").to_string();
        check(&password, length, rules);
        assert!(seen.insert(password), "a password came back twice");
    }
}

// Vault: vault/logical_system.go handlePoliciesPasswordSet/Get/List/Delete
#[tokio::test]
async fn policies_can_be_written_read_listed_and_deleted() {
    let vault = Vault::start().await;
    // RespondWithStatusCode(nil, req, 204): no body.
    let res = put(&vault, "app", POLICY).await;
    assert_eq!((res.status, res.text.as_str()), (204, ""));
    let res = vault
        .root_call("GET", "/v1/sys/policies/password/app", None)
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["data"], json!({ "policy": POLICY }));
    assert_eq!(res.json["mount_type"], "system");
    // POST is the same update; names may contain slashes and are listed whole
    // (vault#23155), sorted as storage lists them.
    let res = vault
        .root_call(
            "POST",
            "/v1/sys/policies/password/team/db",
            Some(json!({ "policy": POLICY })),
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.text);
    let res = vault
        .root_call("LIST", "/v1/sys/policies/password", None)
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["data"], json!({ "keys": ["app", "team/db"] }));
    let same = vault
        .root_call("GET", "/v1/sys/policies/password?list=true", None)
        .await;
    assert_eq!(same.json["data"], res.json["data"]);
    // An update replaces the text.
    let short = "length = 8\nrule \"charset\" {\n  charset = \"xyz\"\n}\n";
    assert_eq!(put(&vault, "app", short).await.status, 204);
    let res = vault
        .root_call("GET", "/v1/sys/policies/password/app", None)
        .await;
    assert_eq!(res.json["data"]["policy"], short);
    // Delete: 204 whether or not the policy exists.
    for name in ["app", "team/db", "never-existed"] {
        let res = vault
            .root_call("DELETE", &format!("/v1/sys/policies/password/{name}"), None)
            .await;
        assert_eq!((res.status, res.text.as_str()), (204, ""), "{name}");
    }
    // handlePoliciesPasswordGet: logical.CodedError(404, ...), wrapped in a multierror.
    assert_errors(
        &vault
            .root_call("GET", "/v1/sys/policies/password/app", None)
            .await,
        404,
        &[&multi("policy does not exist")],
    );
    // An empty list is a 404 with no errors (logical.RespondErrorCommon).
    assert_errors(
        &vault
            .root_call("LIST", "/v1/sys/policies/password", None)
            .await,
        404,
        &[],
    );
}

// Vault: vault/logical_system.go handlePoliciesPasswordGenerate; helper/random Generate
#[tokio::test]
async fn generated_passwords_follow_the_policy() {
    let vault = Vault::start().await;
    assert_eq!(put(&vault, "strong", POLICY).await.status, 204);
    generate_checked(&vault, "strong", 25, 20, &RULES).await;

    // Overlapping charsets are de-duplicated but each rule still counts
    // (docs/concepts/password-policies, "Rule charset").
    let overlap = "length = 6\nrule \"charset\" {\n  charset = \"abcde\"\n  min-chars = 2\n}\nrule \"charset\" {\n  charset = \"cdefg\"\n  min-chars = 3\n}\n";
    assert_eq!(put(&vault, "overlap", overlap).await.status, 204);
    generate_checked(&vault, "overlap", 25, 6, &[("abcde", 2), ("cdefg", 3)]).await;

    // A rule without min-chars only widens the charset.
    let widen =
        "length = 30\nrule \"charset\" {\n  charset = \"abcde\"\n}\nrule \"charset\" {\n  charset = \"01234\"\n  min-chars = 1\n}\n";
    assert_eq!(put(&vault, "widen", widen).await.status, 204);
    generate_checked(&vault, "widen", 10, 30, &[("abcde", 0), ("01234", 1)]).await;

    // Multi-byte characters count as one character each.
    let unicode = "length = 12\nrule \"charset\" {\n  charset = \"äöüß\"\n  min-chars = 12\n}\n";
    assert_eq!(put(&vault, "unicode", unicode).await.status, 204);
    generate_checked(&vault, "unicode", 5, 12, &[("äöüß", 12)]).await;
}

// Vault: docs/concepts/password-policies ("HCL or JSON"); helper/random/serializing.go (JSON shape)
#[tokio::test]
async fn json_and_base64_policies_are_accepted() {
    let vault = Vault::start().await;
    // The shape StringGenerator marshals to: "rule" is a list of {type: [settings]}.
    let json_policy = json!({
        "length": 16,
        "rule": [
            { "charset": [{ "charset": "abcdefghijklmnopqrstuvwxyz", "min-chars": 2 }] },
            { "charset": { "charset": "0123456789", "min-chars": 3 } }
        ]
    })
    .to_string();
    assert_eq!(put(&vault, "json", &json_policy).await.status, 204);
    let read = vault
        .root_call("GET", "/v1/sys/policies/password/json", None)
        .await;
    assert_eq!(read.json["data"]["policy"], json_policy);
    generate_checked(
        &vault,
        "json",
        10,
        16,
        &[("abcdefghijklmnopqrstuvwxyz", 2), ("0123456789", 3)],
    )
    .await;

    // "This can be base64-encoded to avoid string escaping": stored decoded.
    let encoded = STANDARD.encode(POLICY);
    assert_eq!(put(&vault, "b64", &encoded).await.status, 204);
    let read = vault
        .root_call("GET", "/v1/sys/policies/password/b64", None)
        .await;
    assert_eq!(read.json["data"]["policy"], POLICY);
    generate_checked(&vault, "b64", 5, 20, &RULES).await;
}

// Vault: vault/logical_system.go handlePoliciesPasswordGenerate/Get
#[tokio::test]
async fn a_missing_policy_is_a_coded_404() {
    let vault = Vault::start().await;
    assert_errors(
        &generate(&vault, "nope").await,
        404,
        &[&multi("policy does not exist")],
    );
    // Deleting a policy makes generate fail the same way.
    assert_eq!(put(&vault, "gone", POLICY).await.status, 204);
    assert_eq!(generate(&vault, "gone").await.status, 200);
    vault
        .root_call("DELETE", "/v1/sys/policies/password/gone", None)
        .await;
    assert_errors(
        &generate(&vault, "gone").await,
        404,
        &[&multi("policy does not exist")],
    );
}

// Vault: vault/logical_system.go handlePoliciesPasswordSet; helper/random parser.go, string_generator.go validateConfig
#[tokio::test]
async fn invalid_policies_are_400_with_vaults_messages() {
    let vault = Vault::start().await;
    let refused = |body: Value| {
        let vault = &vault;
        async move {
            vault
                .root_call("PUT", "/v1/sys/policies/password/bad", Some(body))
                .await
        }
    };
    assert_errors(&refused(json!({})).await, 400, &[&multi("missing policy")]);
    assert_errors(
        &refused(json!({ "policy": "" })).await,
        400,
        &[&multi("missing policy")],
    );
    // `invalid password policy: <ParsePolicy error>`; validateConfig's own errors
    // are a multierror inside the outer one.
    let invalid = |inner: &str| multi(&format!("invalid password policy: {inner}"));
    let cases: Vec<(&str, String)> = vec![
        (
            "length = 20\n",
            invalid(&multi("no charset specified")),
        ),
        (
            "length = 20\nrule \"charset\" {\n  charset = \"\"\n}\n",
            invalid(&multi("no charset specified")),
        ),
        (
            "rule \"charset\" {\n  charset = \"abc\"\n}\n",
            invalid(&multi("length must be > 0")),
        ),
        (
            "length = 4\nrule \"charset\" {\n  charset = \"abc\"\n  min-chars = 3\n}\nrule \"charset\" {\n  charset = \"123\"\n  min-chars = 2\n}\n",
            invalid(&multi("specified rules require at least 5 characters but 4 is specified")),
        ),
        (
            "length = 0\n",
            invalid("2 errors occurred:\n\t* length must be > 0\n\t* no charset specified\n\n"),
        ),
        (
            "length = 10\nrule \"charset\" {\n  charset = \"ab\\u0007\"\n}\n",
            invalid(&multi("non-printable character in charset")),
        ),
        (
            "length = 10\nrule \"uppercase\" {\n  min-chars = 1\n}\n",
            invalid("unable to parse rules: unable to parse rule uppercase: unrecognized rule type uppercase"),
        ),
        (
            "length = \"20\"\nrule \"charset\" {\n  charset = \"abc\"\n}\n",
            invalid("failed to decode configuration: 1 error(s) decoding:\n\n* 'length' expected type 'int', got unconvertible type 'string', value: '20'"),
        ),
        (
            "length = 10\nrule \"charset\" {\n  charset = \"abc\"\n  min-chars = \"1\"\n}\n",
            invalid("unable to parse rules: unable to parse rule charset: failed to parse charset restriction: 1 error(s) decoding:\n\n* 'min-chars' expected type 'int', got unconvertible type 'string', value: '1'"),
        ),
        // The bounds are checked after parsing (minPasswordLength, maxPasswordLength).
        (
            "length = 3\nrule \"charset\" {\n  charset = \"abc\"\n}\n",
            multi("passwords must be between 4 and 100 characters"),
        ),
        (
            "length = 101\nrule \"charset\" {\n  charset = \"abc\"\n}\n",
            multi("passwords must be between 4 and 100 characters"),
        ),
    ];
    for (policy, expected) in &cases {
        let res = refused(json!({ "policy": policy })).await;
        assert_errors(&res, 400, &[expected.as_str()]);
    }
    // HCL syntax errors: `unable to decode: At L:C: ...` (the wording after the
    // position is the emulator's).
    let res = refused(json!({ "policy": "length 20" })).await;
    assert_eq!(res.status, 400);
    let prefix = "1 error occurred:\n\t* invalid password policy: unable to decode: At 1:8: ";
    assert!(res.errors()[0].starts_with(prefix), "{}", res.text);
    // Nothing was stored.
    assert_errors(
        &vault
            .root_call("LIST", "/v1/sys/policies/password", None)
            .await,
        404,
        &[],
    );
    // The bounds themselves are fine.
    for length in [4, 100] {
        let policy = format!("length = {length}\nrule \"charset\" {{\n  charset = \"abc\"\n}}\n");
        assert_eq!(put(&vault, "edge", &policy).await.status, 204, "{length}");
        generate_checked(&vault, "edge", 2, length, &[("abc", 0)]).await;
    }
}

// Vault: vault/logical_system.go handlePoliciesPasswordSet (ten trial generations in 1s); string_generator.go randomRunes
#[tokio::test]
async fn unsatisfiable_policies_are_refused_after_trial_generation() {
    let vault = Vault::start().await;
    let impossible =
        multi("unable to generate password from provided policy in 1s: are the rules impossible?");
    // More than 256 distinct characters: randomRunes fails every attempt at once.
    let wide: String = (0x100u32..0x100 + 300).filter_map(char::from_u32).collect();
    let policy = format!("length = 10\nrule \"charset\" {{\n  charset = \"{wide}\"\n}}\n");
    assert_errors(&put(&vault, "wide", &policy).await, 400, &[&impossible]);
    // Exactly 256 is allowed.
    let max: String = (0x100u32..0x100 + 256).filter_map(char::from_u32).collect();
    let policy = format!("length = 10\nrule \"charset\" {{\n  charset = \"{max}\"\n}}\n");
    assert_eq!(put(&vault, "max", &policy).await.status, 204);
    // Valid on paper, hopeless in practice: four given characters in a 4-character
    // password drawn from 240 (about 1 chance in 10^8): all ten attempts time out.
    let filler: String = (0x100u32..0x100 + 236).filter_map(char::from_u32).collect();
    let policy = format!(
        "length = 4\nrule \"charset\" {{\n  charset = \"{filler}\"\n}}\n{}",
        ["a", "b", "c", "d"]
            .iter()
            .map(|c| format!("rule \"charset\" {{\n  charset = \"{c}\"\n  min-chars = 1\n}}\n"))
            .collect::<String>()
    );
    assert_errors(&put(&vault, "hopeless", &policy).await, 400, &[&impossible]);
}

// Vault: vault/logical_system_paths.go (policies/password/?$ is LIST only; generate is read only)
#[tokio::test]
async fn unsupported_operations_are_405() {
    let vault = Vault::start().await;
    assert_eq!(put(&vault, "p", POLICY).await.status, 204);
    let unsupported = multi("unsupported operation");
    for (method, path) in [
        ("GET", "/v1/sys/policies/password"),
        ("POST", "/v1/sys/policies/password/p/generate"),
        ("DELETE", "/v1/sys/policies/password/p/generate"),
        ("LIST", "/v1/sys/policies/password/p"),
    ] {
        let body = (method == "POST").then(|| json!({ "policy": POLICY }));
        let res = vault.root_call(method, path, body).await;
        assert_errors(&res, 405, &[&unsupported]);
    }
}

// Vault: vault/acl.go (sys/ paths take ordinary ACL rules); vault/request_handling.go
#[tokio::test]
async fn acl_rules_apply_and_sealed_is_503() {
    let vault = Vault::start().await;
    assert_eq!(put(&vault, "app", POLICY).await.status, 204);
    vault
        .policy(
            "generator",
            json!({ "path": { "sys/policies/password/app/generate": { "capabilities": ["read"] } } }),
        )
        .await;
    let token = vault.token(&["generator"]).await;
    let res = vault
        .call(
            "GET",
            "/v1/sys/policies/password/app/generate",
            &token,
            None,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    check(
        res.json["data"]["password"].as_str().expect("password"),
        20,
        &RULES,
    );
    let denied = multi("permission denied");
    for (method, path, body) in [
        ("GET", "/v1/sys/policies/password/app", None),
        ("LIST", "/v1/sys/policies/password", None),
        (
            "PUT",
            "/v1/sys/policies/password/app",
            Some(json!({ "policy": POLICY })),
        ),
        ("DELETE", "/v1/sys/policies/password/app", None),
        ("GET", "/v1/sys/policies/password/other/generate", None),
    ] {
        let res = vault.call(method, path, &token, body).await;
        assert_errors(&res, 403, &[&denied]);
    }
    // Sealed: consts.ErrSealed before anything else.
    vault.handle.seal();
    assert_errors(&generate(&vault, "app").await, 503, &["Vault is sealed"]);
    assert_errors(
        &vault
            .root_call("LIST", "/v1/sys/policies/password", None)
            .await,
        503,
        &["Vault is sealed"],
    );
    vault.handle.unseal();
    assert_eq!(generate(&vault, "app").await.status, 200);
}
