import Core
import Foundation
import Visualization
import XCTest

final class CurvesTests: XCTestCase {
    private func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "viz-curves-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    func testParsesLossLrAndPerDomainMIoUFromMetricsJSONL() throws {
        var lines: [String] = []
        for s in stride(from: 10, through: 200, by: 10) {
            lines.append(#"{"step": \#(s), "loss": \#(3.0 / Double(s)), "lr": \#(1e-4 * (1 - Double(s) / 200))}"#)
        }
        lines.append(#"{"step": 100, "eval": {"fog": {"miou": 0.30, "iou": {"road": 0.9}}, "night": {"miou": 0.20}}}"#)
        lines.append(#"{"step": 200, "eval": {"fog": {"miou": 0.35}, "night": {"miou": 0.25}}}"#)
        let dir = try tempDir()
        try lines.joined(separator: "\n").write(toFile: dir + "/metrics.jsonl", atomically: true, encoding: .utf8)
        let m = try TrainingMetrics.load(workDir: dir)
        XCTAssertEqual(m.loss.count, 20)
        XCTAssertEqual(m.lr.count, 20)
        XCTAssertEqual(m.loss[0].y, 0.3, accuracy: 1e-12)
        XCTAssertEqual(m.domains, ["fog", "night"])
        XCTAssertEqual(m.miou["fog"]!.map { $0.y }, [0.30, 0.35])
        let final = try XCTUnwrap(m.finalMeanMIoU)
        XCTAssertEqual(final.step, 200)
        XCTAssertEqual(final.miou, 0.30, accuracy: 1e-12)
        let img = CurvesPicture.render(m, title: "run", width: 600)
        XCTAssertEqual(img.width, 600)
        XCTAssertEqual(img.height, 300 + 240 + 300 + 2 * 4)
    }

    func testParsesTrainerEvaluationLinesAndExcludesSourceFromTheTargetMean() throws {
        let text = """
        {"step": 25, "loss": 2.9, "lr": 0.001, "step_s": 0.5, "split_s": {"data": 0.1}}
        {"step": 300, "mean_miou": 0.25, "miou": {"source": 0.4, "fog": 0.2, "night": null, "rain": 0.15}}
        """
        let m = try TrainingMetrics.parse(text, file: "m.jsonl")
        XCTAssertEqual(m.domains, ["fog", "rain", "source"])
        XCTAssertEqual(m.loss.map { $0.y }, [2.9])
        let all = try XCTUnwrap(m.finalMeanMIoU)
        XCTAssertEqual(all.miou, 0.25, accuracy: 1e-12)
        let targets = try XCTUnwrap(m.finalMIoU(excluding: ["source"]))
        XCTAssertEqual(targets.miou, 0.175, accuracy: 1e-12)
        XCTAssertEqual(targets.domains.count, 3)
    }

    func testAcceptsFlatAndPerRecordDomainShapes() throws {
        let text = """
        {"step": 5, "miou/fog": 0.1, "night/miou": 0.2}
        {"step": 6, "domain": "rain", "miou": 0.3}
        {"step": 7, "val": {"snow": 0.4}}
        """
        let m = try TrainingMetrics.parse(text, file: "m.jsonl")
        XCTAssertEqual(Set(m.domains), ["fog", "night", "rain", "snow"])
        XCTAssertEqual(m.miou["snow"]!.first!.y, 0.4)
    }

    func testMissingWorkDirMissingFileAndBadLineGiveOneClearLine() throws {
        let dir = try tempDir()
        XCTAssertThrowsError(try TrainingMetrics.load(workDir: dir + "/nope")) { e in
            XCTAssertEqual((e as? CausalTuneError)?.message, "\(dir)/nope: no such work directory")
        }
        XCTAssertThrowsError(try TrainingMetrics.load(workDir: dir)) { e in
            let msg = (e as? CausalTuneError)?.message ?? ""
            XCTAssertTrue(msg.hasPrefix("\(dir)/metrics.jsonl: missing"), msg)
            XCTAssertFalse(msg.contains("\n"))
        }
        try "{\"step\": 1}\nnot json\n".write(toFile: dir + "/metrics.jsonl", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TrainingMetrics.load(workDir: dir)) { e in
            XCTAssertEqual((e as? CausalTuneError)?.message, "\(dir)/metrics.jsonl:2: not a JSON object")
        }
    }
}
