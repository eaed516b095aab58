import Foundation
import Training
import XCTest

/// `causal-tune config`: the schema table, and a config resolved exactly as a run resolves it.
final class ConfigCommandTests: XCTestCase {
    func testSchemaPrintsEveryKeyAndConfigPrintsTheResolvedYAML() throws {
        let schema = try CommandLineRunner.run(["config", "--schema"])
        XCTAssertEqual(schema.status, 0, schema.output)
        XCTAssertEqual(schema.output, ExperimentConfig.schema.markdownTable)

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("config-cmd-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("c.yaml").path
        try "model:\n  backbone: {weights: random}\n".write(toFile: path, atomically: true, encoding: .utf8)
        let resolved = try CommandLineRunner.run(["config", "--config", path, "--set", "train.iters=7"])
        XCTAssertEqual(resolved.status, 0, resolved.output)
        let expected = try ExperimentConfig.load(path: path, overrides: ["train.iters=7"])
        XCTAssertEqual(try ExperimentConfig.parse(yaml: resolved.output), expected)
        XCTAssertEqual(expected.train.iters, 7)

        let bad = try CommandLineRunner.run(["config", "--config", path, "--set", "train.itters=7"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.output.contains("train.itters"), bad.output)
        XCTAssertNotEqual(try CommandLineRunner.run(["config"]).status, 0, "neither --schema nor --config")
    }
}
