//! AWS clients (boto3 scripts in `tests/aws`, the AWS CLIs) run against the
//! server's S3 endpoint with a Nimbus access key and nothing else.

use std::path::PathBuf;
use std::process::Command;

/// Where the boto3 scripts are.
pub fn scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/aws")
}

/// `program`, run in [`scripts`], signing with the access key `id` and
/// `secret` and reading nothing from the user's own AWS configuration.
pub fn aws_command(program: &str, id: &str, secret: &str) -> Command {
    let mut command = Command::new(program);
    command
        .current_dir(scripts())
        .env("AWS_ACCESS_KEY_ID", id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_CA_BUNDLE");
    command
}
