//! The `nimbus` command line: validate, build, `up --build`, help, and the
//! errors a user sees for a broken manifest or build.

mod support;

use nimbus_test_programs as programs;
use support::{TestApp, client, nimbus};

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn validate_accepts_a_good_manifest() {
    let app = TestApp::new("good")
        .function("hello", programs::HELLO, "")
        .route("/h", "hello", "");
    let manifest = app.write();
    let output = nimbus(&["validate", manifest.to_str().unwrap()], app.dir.path());
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("app `good` is valid (1 functions, 1 HTTP routes, 0 schedules)"),
        "{stdout}"
    );
}

#[test]
fn validate_reads_nimbus_toml_in_the_current_directory_by_default() {
    let app = TestApp::new("cwd").function("hello", programs::HELLO, "");
    app.write();
    let output = nimbus(&["validate"], app.dir.path());
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn validate_points_at_the_mistake_and_the_fix() {
    let app = TestApp::new("bad").function("hello", programs::HELLO, "timeout_ms = 0");
    let manifest = app.write();
    let output = nimbus(&["validate", manifest.to_str().unwrap()], app.dir.path());
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains(&format!("{}:6:14", manifest.display())),
        "{err}"
    );
    assert!(
        err.contains("`timeout_ms` = 0 is out of range")
            && err.contains("help: use a value from 1 to 900000"),
        "{err}"
    );
}

#[test]
fn validate_reports_a_missing_component_with_the_build_hint() {
    let app = TestApp::new("unbuilt").function("hello", "out/hello.wasm", "build = \"true\"");
    let manifest = app.write();
    let output = nimbus(&["validate", manifest.to_str().unwrap()], app.dir.path());
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("nimbus.toml:5:13")
            && err.contains("does not exist")
            && err.contains("nimbus build"),
        "{err}"
    );
}

#[test]
fn up_refuses_a_broken_manifest_before_listening() {
    let app = TestApp::new("broken").function("hello", programs::HELLO, "colour = \"blue\"");
    let manifest = app.write();
    let output = nimbus(
        &[
            "up",
            manifest.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        app.dir.path(),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("unknown field `colour`"),
        "{}",
        stderr(&output)
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"));
}

#[test]
fn build_runs_each_build_command_in_the_manifest_directory() {
    let build = format!(
        "build = \"mkdir -p out && cp {} out/hello.wasm\"",
        programs::HELLO
    );
    let app = TestApp::new("builds").function("hello", "out/hello.wasm", &build);
    let manifest = app.write();
    let output = nimbus(
        &["build", manifest.to_str().unwrap()],
        std::path::Path::new("/"),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(app.dir.path().join("out/hello.wasm").is_file());
}

#[test]
fn a_failing_build_names_the_function_and_command() {
    let app = TestApp::new("fails").function("hello", "hello.wasm", "build = \"exit 3\"");
    let manifest = app.write();
    let output = nimbus(&["build", manifest.to_str().unwrap()], app.dir.path());
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("function `hello` failed") && err.contains("exit 3"),
        "{err}"
    );
}

#[tokio::test]
async fn up_with_build_builds_then_serves() {
    let build = format!("build = \"cp {} built.wasm\"", programs::HELLO);
    let app = TestApp::new("upbuild")
        .function("hello", "built.wasm", &build)
        .route("/hello", "hello", "");
    let nimbus = app.start_with(&["--build"]).await;
    let response = client().get(nimbus.url("/hello")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "hello, world\n");
}

#[test]
fn help_describes_the_commands_and_their_options() {
    let output = nimbus(&["--help"], std::path::Path::new("/"));
    let text = String::from_utf8_lossy(&output.stdout);
    for command in ["up", "build", "validate"] {
        assert!(text.contains(command), "{text}");
    }
    let output = nimbus(&["up", "--help"], std::path::Path::new("/"));
    let text = String::from_utf8_lossy(&output.stdout);
    for option in [
        "--build",
        "--listen",
        "--admin-listen",
        "--data-dir",
        "--shutdown-grace-ms",
        "--max-connections",
        "--header-read-timeout-ms",
    ] {
        assert!(text.contains(option), "{option} missing from:\n{text}");
    }
}

#[test]
fn out_of_range_listener_settings_are_refused() {
    let app = TestApp::new("flags").function("hello", programs::HELLO, "");
    let manifest = app.write();
    for flag in [
        "--max-connections",
        "--header-read-timeout-ms",
        "--body-read-timeout-ms",
        "--pool-instances",
        "--max-function-memory-mb",
    ] {
        let output = nimbus(
            &["up", manifest.to_str().unwrap(), flag, "0"],
            app.dir.path(),
        );
        assert_eq!(output.status.code(), Some(2), "{flag}");
        assert!(
            stderr(&output).contains("0 is not in 1.."),
            "{flag}: {}",
            stderr(&output)
        );
    }
    for (flag, range) in [
        ("--max-header-bytes", "8192..=1048576"),
        ("--max-wasm-stack-kb", "64..=65536"),
    ] {
        let output = nimbus(
            &["up", manifest.to_str().unwrap(), flag, "1"],
            app.dir.path(),
        );
        assert_eq!(output.status.code(), Some(2), "{flag}");
        assert!(
            stderr(&output).contains(&format!("1 is not in {range}")),
            "{flag}: {}",
            stderr(&output)
        );
    }
}
