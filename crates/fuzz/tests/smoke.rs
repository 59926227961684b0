//! The fuzz targets' smoke run on the stable toolchain: every seed in
//! `fuzz/corpus/<target>/` (crashes once found are kept there too), then a
//! fixed number of deterministic mutations of them. Long runs with coverage
//! feedback are cargo-fuzz's job (docs/fuzzing.md).

use nimbus_fuzz::mutate::{Rng, mutate};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

/// The seed of every smoke run; change it to explore, keep it fixed in CI.
const SEED: u64 = 0x6e69_6d62_7573;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// Runs `target` over the corpus and `mutations` mutants; on a failure,
/// names the input so it can be saved and replayed.
fn smoke(name: &str, mutations: usize, target: impl Fn(&[u8])) {
    let seeds = corpus(name);
    let mut rng = Rng::new(SEED);
    let inputs = seeds.iter().cloned().chain((0..mutations).map(|i| {
        let base = &seeds[i % seeds.len()];
        mutate(&mut rng, base, &seeds)
    }));
    for (i, input) in inputs.enumerate() {
        if catch_unwind(AssertUnwindSafe(|| target(&input))).is_err() {
            let saved = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-failure"));
            std::fs::write(&saved, &input).unwrap();
            panic!(
                "{name} failed on input {i} (seeds first, then mutations of seed {SEED:#x}), \
                 saved as {}; it starts b\"{}\"",
                saved.display(),
                input[..input.len().min(200)].escape_ascii()
            );
        }
    }
}

#[test]
fn manifest_target_holds_on_seeds_and_mutations() {
    smoke("manifest", 10_000, nimbus_fuzz::manifest);
}

#[test]
fn route_target_holds_on_seeds_and_mutations() {
    smoke("route", 50_000, nimbus_fuzz::route);
}

#[test]
fn api_request_target_holds_on_seeds_and_mutations() {
    let harness = nimbus_fuzz::ApiHarness::new();
    smoke("api_request", 12_000, |input| harness.run(input));
    harness.check_sentinels();
}

#[test]
fn gateway_request_target_holds_on_seeds_and_mutations() {
    let harness =
        nimbus_fuzz::GatewayHarness::new(std::path::Path::new(nimbus_test_programs::ECHO));
    smoke("gateway_request", 3_000, |input| harness.run(input));
    harness.check_sentinel();
}
