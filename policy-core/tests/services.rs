//! The Services conformance set (testdata/services): every case's
//! hand-written answers against the model. The kernel test
//! (policy-nft/tests/kernel_services.rs) probes the same cases with packets.

#[path = "support/services_case.rs"]
mod services_case;

#[test]
fn every_services_case_gets_its_expected_answers() {
    let cases = services_case::cases();
    assert!(cases.len() >= 25, "the set has {} cases", cases.len());
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, case) in &cases {
        let model = services_case::model(case);
        for (index, expectation) in case.expect.iter().enumerate() {
            checked += 1;
            for problem in services_case::check(&model, expectation) {
                failures.push(format!("{name} expect[{index}]: {problem}"));
            }
        }
    }
    assert!(checked >= 60, "only {checked} expectations");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
