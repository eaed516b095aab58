import ArgumentParser
import Config
import Core
import Foundation
import Training

/// `causal-tune config`: the configuration keys, or a config as a run would resolve it.
///
///     causal-tune config --schema                      every key: type, default, allowed values
///     causal-tune config --config FILE [--set k=v ...]  the resolved config (YAML, every key)
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Print every config key (--schema), or a config resolved as a run would see it.",
        discussion: """
        --schema prints a Markdown table of every key with its type, default and allowed \
        values (docs/configuration.md holds the same table). --config FILE resolves the file's \
        _base_ chain and every --set, checks it, and prints the YAML a run would save.
        """
    )

    @Flag(help: "Print every key with its type, default and allowed values.") var schema = false
    @Option(help: "A config file to resolve and print.") var config: String?
    @Option(name: .customLong("set"), parsing: .upToNextOption, help: "Override a config key: key.path=value (repeatable).")
    var overrides: [String] = []

    func validate() throws {
        guard schema != (config != nil) else {
            throw ValidationError("give either --schema or --config FILE")
        }
    }

    func run() throws {
        do {
            if schema {
                print(ExperimentConfig.schema.markdownTable, terminator: "")
            } else if let config {
                print(try ExperimentConfig.load(path: config, overrides: overrides).yaml, terminator: "")
            }
        } catch let e as CausalTuneError {
            e.printToStandardError()
            throw ExitCode.failure
        }
    }
}

extension ExperimentConfig {
    /// `--config FILE [--set k=v …] [--work-dir DIR]` as `train` and `evaluate` take them:
    /// `--work-dir` is the last override of `output.work_dir`.
    static func load(path: String, overrides: [String], workDir: String?) throws -> ExperimentConfig {
        try load(path: path, overrides: overrides + (workDir.map { ["output.work_dir=\($0)"] } ?? []))
    }
}
