import Core
import Foundation
import Training
import XCTest

/// Every numeric key has a range; empty `--set` values, YAML aliases and absurd nesting are
/// one clear line each.
final class ConfigValidationTests: XCTestCase {
    private let base = "model: {backbone: {weights: random}}\n"

    private func assertRefused(_ overrides: [String], _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ExperimentConfig.parse(yaml: base, overrides: overrides), file: file, line: line) { error in
            let msg = (error as? CausalTuneError)?.message ?? "\(error)"
            for f in fragments { XCTAssertTrue(msg.contains(f), "'\(f)' not in: \(msg)", file: file, line: line) }
            XCTAssertFalse(msg.contains("\n"), msg, file: file, line: line)
        }
    }

    func testDefaultsAreInRange() throws {
        let c = try ExperimentConfig.parse(yaml: base)
        XCTAssertEqual(c.train.betas, [0.9, 0.999])
    }

    func testNumericRanges() {
        assertRefused(["train.betas=[0.9, 1.0]"], ["train.betas", "below 1"])
        assertRefused(["train.betas=[-0.1, 0.9]"], ["train.betas", "at least 0"])
        assertRefused(["train.eps=0"], ["train.eps", "greater than 0"])
        assertRefused(["train.lr=0"], ["train.lr"])
        assertRefused(["train.iters=0"], ["train.iters"])
        assertRefused(["train.batch_size=0"], ["train.batch_size"])
        assertRefused(["model.peft.filter.high=5"], ["model.peft.filter.high", "at most 1"])
        assertRefused(["model.peft.filter.low=-0.5"], ["model.peft.filter.low"])
        assertRefused(["model.peft.tokens=100000"], ["model.peft.tokens", "at most 4096"])
        assertRefused(["model.peft.lora_rank=1000000"], ["model.peft.lora_rank", "at most"])
        assertRefused(["model.head.num_classes=300"], ["model.head.num_classes", "at most 255"])
        assertRefused(["model.backbone.image_size=100000"], ["model.backbone.image_size"])
        assertRefused(["train.poly_power=1e9"], ["train.poly_power"])
        XCTAssertNoThrow(try ExperimentConfig.parse(yaml: base, overrides: ["model.head.num_classes=255", "train.betas=[0, 0.99]"]))
    }

    func testEmptySetValueIsAnErrorAndNullIsExplicit() throws {
        assertRefused(["train="], ["--set train=", "empty value", "null"])
        assertRefused(["train.lr= "], ["empty value"])
        let c = try ExperimentConfig.parse(yaml: base, overrides: ["train.grad_clip=1.0", "train.grad_clip=null"])
        XCTAssertNil(c.train.gradClip)
    }

    func testYAMLAnchorsAndAliasesAreRefused() {
        let aliased = base + "train: &t {iters: 5}\noutput: {work_dir: *t}\n"
        XCTAssertThrowsError(try ExperimentConfig.parse(yaml: aliased, source: "a.yaml")) { e in
            XCTAssertTrue(((e as? CausalTuneError)?.message ?? "").contains("anchors and aliases"), "\(e)")
        }
        // The billion-laughs shape: each level doubles the previous one.
        var bomb = base + "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1..<30 { bomb += "a\(i): &a\(i) [*a\(i - 1), *a\(i - 1), *a\(i - 1), *a\(i - 1), *a\(i - 1), *a\(i - 1), *a\(i - 1), *a\(i - 1)]\n" }
        let start = Date()
        XCTAssertThrowsError(try ExperimentConfig.parse(yaml: bomb, source: "bomb.yaml"))
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
    }

    func testDeepNestingIsRefusedBeforeParsing() {
        for text in [String(repeating: "[", count: 200_000), base + "x: " + String(repeating: "- ", count: 200_000) + "1\n",
                     String(repeating: "{a: ", count: 100_000)] {
            XCTAssertThrowsError(try ExperimentConfig.parse(yaml: text, source: "deep.yaml")) { e in
                XCTAssertTrue(((e as? CausalTuneError)?.message ?? "").contains("nests too deeply"), "\(e)")
            }
        }
        XCTAssertThrowsError(try ExperimentConfig.parse(yaml: String(repeating: "# comment\n", count: 200_000), source: "big.yaml")) { e in
            XCTAssertTrue(((e as? CausalTuneError)?.message ?? "").contains("too large"), "\(e)")
        }
    }
}
