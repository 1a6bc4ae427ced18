//! Policy configuration: every variable and every config error, all reported at once.

use crate::policy::test_support::*;
use crate::policy::*;

// ---------------------------------------------------------------- configuration

#[test]
fn reads_every_variable() {
    let p = policy(&[
        ("WARN_AFTER", "90m"),
        ("EXPIRE_AFTER", "1d"),
        ("AUTO_EXPIRE", "TRUE"),
        ("REMIND_EVERY", "2h"),
        (
            "LOCK_POLICY",
            r#"[{"path": "acme-tfstate/prod/*", "warn_after": "30m", "expire_after": "2h", "auto_expire": false}]"#,
        ),
    ])
    .unwrap();
    assert_eq!(p.warn_after, d(90 * M));
    assert_eq!(p.expire_after, d(86_400));
    assert!(p.auto_expire);
    assert_eq!(p.remind_every, d(2 * H));
    assert_eq!(
        p.overrides,
        vec![PathOverride::new(
            "acme-tfstate/prod/*",
            Some(d(30 * M)),
            Some(d(2 * H)),
            Some(false)
        )
        .unwrap()]
    );
    // Blank values are unset.
    assert_eq!(
        policy(&[("WARN_AFTER", " "), ("LOCK_POLICY", "")]).unwrap(),
        StaleLockPolicy::default()
    );
    assert!(policy(&[("LOCK_POLICY", "[]")])
        .unwrap()
        .overrides
        .is_empty());
}

#[test]
fn global_variable_errors() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("WARN_AFTER", "4x")], "WARN_AFTER: \"4x\" has an unknown unit"),
        (&[("EXPIRE_AFTER", "4")], "EXPIRE_AFTER: \"4\" ends in a number without a unit"),
        (&[("REMIND_EVERY", "h")], "REMIND_EVERY: \"h\" has a unit without a number"),
        (&[("AUTO_EXPIRE", "maybe")], "AUTO_EXPIRE: \"maybe\" is not a boolean"),
        (&[("WARN_AFTER", "0s")], "WARN_AFTER: \"0s\" is zero; expected a duration longer than 0s"),
        (&[("EXPIRE_AFTER", "0m")], "EXPIRE_AFTER: \"0m\" is zero"),
        (&[("REMIND_EVERY", "0h")], "REMIND_EVERY: \"0h\" is zero"),
        (
            &[("WARN_AFTER", "2h"), ("EXPIRE_AFTER", "1h")],
            "EXPIRE_AFTER: 1h is shorter than WARN_AFTER 2h; a lock must be warned about before it is proposed for unlock, so set EXPIRE_AFTER ≥ WARN_AFTER",
        ),
        (
            &[("EXPIRE_AFTER", "30m")],
            "EXPIRE_AFTER: 30m is shorter than the default WARN_AFTER 1h",
        ),
        (
            &[("WARN_AFTER", "5h")],
            "EXPIRE_AFTER: the default 4h is shorter than WARN_AFTER 5h",
        ),
    ];
    for (vars, expected) in cases {
        let err = one_error(vars);
        assert!(
            err.starts_with(expected),
            "{vars:?}\n got: {err}\nwant: {expected}"
        );
    }
    // Equal thresholds are fine: the lock goes straight to a proposal.
    assert!(policy(&[("WARN_AFTER", "2h"), ("EXPIRE_AFTER", "2h")]).is_ok());
}

#[test]
fn a_bad_threshold_does_not_cause_a_second_spurious_error() {
    // WARN_AFTER is bad, so the default stands in; comparing it with EXPIRE_AFTER would be noise.
    let errs = errors(&[("WARN_AFTER", "x"), ("EXPIRE_AFTER", "30m")]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("WARN_AFTER:"));
}

#[test]
fn all_problems_are_reported_at_once() {
    let errs = errors(&[
        ("WARN_AFTER", "x"),
        ("AUTO_EXPIRE", "sometimes"),
        ("REMIND_EVERY", "0s"),
        (
            "LOCK_POLICY",
            r#"[{"path": "a/*", "warn": "1h"}, {"path": "b/[", "auto_expire": false}]"#,
        ),
    ]);
    assert_eq!(errs.len(), 5, "{errs:#?}");
}

#[test]
fn lock_policy_errors_name_the_variable_the_entry_and_the_problem() {
    let cases: &[(&str, &str)] = &[
        (
            "[{\"path\": \"a/*\",}]",
            "LOCK_POLICY: is not valid JSON (trailing comma at line 1 column 17); expected an array such as [{\"path\": \"acme-tfstate/prod/*\"",
        ),
        (
            r#"{"path": "a/*"}"#,
            "LOCK_POLICY: is a JSON object, not an array; expected an array such as",
        ),
        (
            r#"[{"path": "a/*", "warn": "1h"}]"#,
            "LOCK_POLICY: entry 0 (\"a/*\"): unknown field `warn`, expected one of `path`, `warn_after`, `expire_after`, `auto_expire`",
        ),
        (
            r#"[{"warn_after": "1h"}]"#,
            "LOCK_POLICY: entry 0: missing field `path`",
        ),
        (r#"["a/*"]"#, "LOCK_POLICY: entry 0: invalid type: string \"a/*\""),
        (
            r#"[{"path": "ok/*", "auto_expire": false}, {"path": "a/[", "auto_expire": false}]"#,
            "LOCK_POLICY: entry 1 (\"a/[\"): bad glob: error parsing glob 'a/[': unclosed character class",
        ),
        (
            r#"[{"path": "a/*", "warn_after": "30x"}]"#,
            "LOCK_POLICY: entry 0 (\"a/*\"): warn_after: \"30x\" has an unknown unit",
        ),
        (
            r#"[{"path": "a/*", "expire_after": 7200}]"#,
            "LOCK_POLICY: entry 0 (\"a/*\"): invalid type: integer `7200`, expected a string",
        ),
        (
            r#"[{"path": "a/*", "expire_after": "0s"}]"#,
            "LOCK_POLICY: entry 0 (\"a/*\"): expire_after \"0s\" is zero",
        ),
        (
            r#"[{"path": "a/*", "auto_expire": "no"}]"#,
            "LOCK_POLICY: entry 0 (\"a/*\"): invalid type: string \"no\", expected a boolean",
        ),
        (
            r#"[{"path": "a/*", "warn_after": "3h", "expire_after": "2h"}]"#,
            "LOCK_POLICY: entry 0 (\"a/*\"): expire_after 2h is shorter than warn_after 3h; a lock must be warned about before it is proposed for unlock",
        ),
        (
            r#"[{"path": "a/*", "warn_after": "5h"}]"#,
            "LOCK_POLICY: entry 0 (\"a/*\"): expire_after 4h (from EXPIRE_AFTER) is shorter than warn_after 5h;",
        ),
        (
            r#"[{"path": "a/*", "expire_after": "30m"}]"#,
            "LOCK_POLICY: entry 0 (\"a/*\"): expire_after 30m is shorter than warn_after 1h (from WARN_AFTER);",
        ),
        (
            r#"[{"path": "a/*"}]"#,
            "LOCK_POLICY: entry 0 (\"a/*\"): sets none of `warn_after`, `expire_after`, `auto_expire`, so it would have no effect",
        ),
        (
            r#"[{"path": " ", "auto_expire": false}]"#,
            "LOCK_POLICY: entry 0 (\" \"): `path` is empty",
        ),
    ];
    for (json, expected) in cases {
        let err = one_error(&[("LOCK_POLICY", json)]);
        assert!(
            err.starts_with(expected),
            "{json}\n got: {err}\nwant: {expected}"
        );
    }
}

#[test]
fn lock_policy_reports_every_bad_entry_and_keeps_none_of_them() {
    let mut e = env(&[(
        "LOCK_POLICY",
        r#"[{"path": "good/*", "auto_expire": false},
            {"path": "a/*", "warn_after": "x", "expire_after": "y"},
            {"path": "b/*", "nope": 1}]"#,
    )]);
    let p = StaleLockPolicy::from_env(&mut e);
    assert_eq!(p.overrides.len(), 1);
    let errs = e.finish(()).unwrap_err().0;
    let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 3, "{text:#?}");
    assert!(text[0].starts_with("LOCK_POLICY: entry 1 (\"a/*\"): warn_after:"));
    assert!(text[1].starts_with("LOCK_POLICY: entry 1 (\"a/*\"): expire_after:"));
    assert!(text[2].starts_with("LOCK_POLICY: entry 2 (\"b/*\"): unknown field `nope`"));
    assert!(errs.iter().all(|e| e.variable == "LOCK_POLICY"));
}

#[test]
fn entries_that_set_no_threshold_are_not_blamed_for_the_globals() {
    let errs = errors(&[
        ("WARN_AFTER", "5h"),
        ("LOCK_POLICY", r#"[{"path": "a/*", "auto_expire": false}]"#),
    ]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("EXPIRE_AFTER:"));
}

#[test]
fn entry_order_check_is_skipped_when_globals_are_invalid() {
    let errs = errors(&[
        ("WARN_AFTER", "bad"),
        ("LOCK_POLICY", r#"[{"path": "a/*", "expire_after": "30m"}]"#),
    ]);
    assert_eq!(errs.len(), 1, "{errs:?}");
}
