import Config
import Foundation
import Training
import XCTest

/// docs/configuration.md holds the table `causal-tune config --schema` prints: the page
/// cannot drift from the keys the program accepts.
final class ConfigurationDocsTests: XCTestCase {
    static let begin = "<!-- causal-tune config --schema: begin -->\n"
    static let end = "<!-- causal-tune config --schema: end -->"

    func testTheConfigurationPageHoldsTheSchemaTable() throws {
        let page = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/configuration.md")
        let text = try String(contentsOf: page, encoding: .utf8)
        guard let a = text.range(of: Self.begin), let b = text.range(of: Self.end, range: a.upperBound..<text.endIndex) else {
            return XCTFail("docs/configuration.md lacks the schema markers")
        }
        XCTAssertEqual(String(text[a.upperBound..<b.lowerBound]), ExperimentConfig.schema.markdownTable,
                       "regenerate the table with `causal-tune config --schema`")
    }

    func testTheTableHasEveryKeyWithItsDefaultAndRange() throws {
        let rows = ExperimentConfig.schema.keyDescriptions()
        let byPath = Dictionary(uniqueKeysWithValues: rows.map { ($0.path, $0) })
        XCTAssertEqual(byPath["model.backbone.weights"]?.defaultValue, "required")
        XCTAssertEqual(byPath["model.peft.tokens"], ConfigKeyDescription(path: "model.peft.tokens", type: "integer",
                                                                          defaultValue: "100", allowed: "2 … 4096"))
        XCTAssertEqual(byPath["train.lr"]?.allowed, "(0, 10]")
        XCTAssertEqual(byPath["train.betas"]?.allowed, "2 entries, each [0, 1)")
        XCTAssertEqual(byPath["data.val[].dataset"]?.defaultValue, "required")
        XCTAssertEqual(byPath["model.head.type"]?.allowed, "linear \\| mask2former")
        // Every leaf of the resolved default config is a row, and nothing else is.
        let config = try ExperimentConfig.parse(yaml: "model:\n  backbone: {weights: random}\n")
        func leaves(_ v: ConfigValue, _ path: String) -> [String] {
            guard case .map(let m) = v else { return [path] }
            return m.entries.flatMap { leaves($0.value, path.isEmpty ? $0.key : "\(path).\($0.key)") }
        }
        XCTAssertEqual(Set(leaves(config.resolved, "")), Set(rows.map(\.path).filter { !$0.contains("[]") }))
    }
}
