//! The `haagent` binary: everything lives in the library; see `haagent::cli`.

fn main() -> std::process::ExitCode {
    haagent::cli::main()
}
