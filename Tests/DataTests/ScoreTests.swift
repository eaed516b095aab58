import ChildProcesses
import Core
import Data
import Evaluation
import Foundation
import ImageIO
import XCTest

final class ScoreTests: XCTestCase {
    /// The fixture's expected values come from cityscapesScripts' evalPixelLevelSemanticLabeling.
    func checkAgainstOfficial(_ m: SegmentationMetrics, file: StaticString = #filePath, line: UInt = #line) throws {
        let exp = try loadJSON(fixture("score/expected.json"))
        let iou = exp["iou"] as! [String: Any]
        for (name, v) in zip(m.classNames, m.iou) {
            if let x = iou[name] as? Double {
                XCTAssertNotNil(v, name, file: file, line: line)
                XCTAssertEqual(v ?? -1, x, accuracy: 1e-6, name, file: file, line: line)
            } else {
                XCTAssertNil(v, "\(name) is absent from both and must be null", file: file, line: line)
            }
        }
        XCTAssertEqual(m.miou!, exp["miou"] as! Double, accuracy: 1e-6, file: file, line: line)
        XCTAssertEqual(m.pixels, Int64(exp["pixels"] as! Int), file: file, line: line)
    }

    func testScoreMatchesCityscapesScripts() throws {
        let r = try Score.run(predDir: fixture("score/pred"), gtDir: fixture("score/gt"))
        XCTAssertEqual(r.encoding, .labelId, "inferred from *_gtFine_labelIds.png")
        XCTAssertEqual(r.images, 5)
        try checkAgainstOfficial(r.metrics)
        let explicit = try Score.run(predDir: fixture("score/pred"), gtDir: fixture("score/gt"), encoding: .labelId)
        XCTAssertEqual(explicit.metrics, r.metrics)
    }

    func testTrainIdGroundTruthGivesTheSameScore() throws {
        // Convert the gt to train ids under *_gtFine_labelTrainIds names.
        let dir = try makeTempDir(self)
        let m = try Score.match(predDir: fixture("score/pred"), gtDir: fixture("score/gt"), encoding: .labelId)
        for (_, gt) in m.pairs {
            var l = try ImageIO.readLabels(gt)
            LabelEncoding.labelId.toTrainIds(&l)
            let name = (gt as NSString).lastPathComponent.replacingOccurrences(of: "labelIds", with: "labelTrainIds")
            try ImageIO.writePNG(l, to: dir + "/x/" + name)
        }
        let r = try Score.run(predDir: fixture("score/pred"), gtDir: dir)
        XCTAssertEqual(r.encoding, .trainId)
        try checkAgainstOfficial(r.metrics)
    }

    func testStemsStripCityscapesSuffixes() {
        XCTAssertEqual(FileStem.of("/a/aachen_000000_000019_leftImg8bit.png"), "aachen_000000_000019")
        XCTAssertEqual(FileStem.of("aachen_000000_000019_gtFine_labelTrainIds.png"), "aachen_000000_000019")
        XCTAssertEqual(FileStem.of("GOPR0122_frame_000161_gt_labelIds.png"), "GOPR0122_frame_000161")
        XCTAssertEqual(FileStem.of("GOPR0122_frame_000161_rgb_anon.png"), "GOPR0122_frame_000161")
        XCTAssertEqual(FileStem.of("00001.png"), "00001")
    }

    func testConfusionMatrixCountsOutOfRangePredictionsAsWrong() {
        var cm = ConfusionMatrix(numClasses: 3)
        let gt: [UInt8] = [0, 0, 1, 1, 255, 2]
        let pr: [UInt8] = [0, 255, 1, 7, 0, 1]
        pr.withUnsafeBufferPointer { p in gt.withUnsafeBufferPointer { g in cm.add(prediction: p, groundTruth: g) } }
        let iou = cm.iou
        XCTAssertEqual(iou[0]!, 1.0 / 2.0, accuracy: 1e-12)   // tp 1, fn 1 (255), fp 0 (the 0 on ignore)
        XCTAssertEqual(iou[1]!, 1.0 / 3.0, accuracy: 1e-12)   // tp 1, fn 1 (7), fp 1 (from gt 2)
        XCTAssertEqual(iou[2]!, 0.0, accuracy: 1e-12)
        XCTAssertEqual(cm.pixels, 5)
        let cm2 = ConfusionMatrix(numClasses: 3)
        XCTAssertNil(cm2.iou[0]); XCTAssertNil(cm2.metrics(classNames: ["a", "b", "c"]).miou)
    }

    func testMissingPredictionAndSizeMismatchAreClearErrors() throws {
        let dir = try makeTempDir(self)
        try ImageIO.writePNG(LabelMap(width: 4, height: 3, fill: 1), to: dir + "/gt/a.png")
        try ImageIO.writePNG(LabelMap(width: 4, height: 3, fill: 1), to: dir + "/gt/b.png")
        try ImageIO.writePNG(LabelMap(width: 5, height: 3, fill: 1), to: dir + "/pred/a.png")
        XCTAssertThrowsError(try Score.run(predDir: dir + "/pred", gtDir: dir + "/gt")) { e in
            XCTAssertTrue((e as! CausalTuneError).message.contains("b.png"))
        }
        try ImageIO.writePNG(LabelMap(width: 4, height: 3, fill: 1), to: dir + "/pred/b.png")
        XCTAssertThrowsError(try Score.run(predDir: dir + "/pred", gtDir: dir + "/gt")) { e in
            XCTAssertTrue((e as! CausalTuneError).message.contains("a.png"))
        }
    }

    /// Runs the release `causal-tune score` binary (built by launch/test; missing = failure).
    func testCommandLineScoreWritesJSON() throws {
        try ChildProcess.requireBinary("causal-tune")
        let bin = ChildProcess.binary("causal-tune")
        let dir = try makeTempDir(self)
        let ok = try ChildProcess.run(bin, ["score", "--pred", fixture("score/pred"), "--gt", fixture("score/gt"),
                                            "--gt-format", "labelid", "--json", dir + "/s.json"], timeout: 120)
        XCTAssertEqual(ok.status, 0, ok.output)
        let j = try loadJSON(dir + "/s.json")
        let exp = try loadJSON(fixture("score/expected.json"))
        XCTAssertEqual(j["miou"] as! Double, exp["miou"] as! Double, accuracy: 1e-6)
        XCTAssertEqual(j["pixels"] as! Int, exp["pixels"] as! Int)
        XCTAssertTrue((j["iou"] as! [String: Any])["train"] is NSNull)
        let bad = try ChildProcess.run(bin, ["score", "--pred", dir + "/nope", "--gt", fixture("score/gt")], timeout: 120)
        XCTAssertNotEqual(bad.status, 0)
        let msg = bad.output
        XCTAssertTrue(msg.contains("nope"), msg)
    }
}
