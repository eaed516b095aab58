import Core
import Foundation
import ImageIO
import Visualization
import XCTest

final class SweepTests: XCTestCase {
    private func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "viz-sweep-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    /// A finished run in the trainer's format: training lines, an early evaluation, and the
    /// final one (source — the training domain, left out of the mean — fog, night).
    private func writeRun(_ dir: String, fog: Double, night: Double) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let text = """
        {"step": 10, "loss": 2.5, "lr": 0.0001}
        {"step": 50, "mean_miou": 0.3, "miou": {"source": 0.9, "fog": 0.01, "night": 0.02}}
        {"step": 100, "loss": 1.5, "lr": 0.00001}
        {"step": 100, "mean_miou": 0.5, "miou": {"source": 0.9, "fog": \(fog), "night": \(night)}}
        """
        try text.write(toFile: dir + "/metrics.jsonl", atomically: true, encoding: .utf8)
    }

    func testHeatMapCellsAndCSVEqualTheRunsFinalMeanMIoU() throws {
        let root = try tempDir()
        let lows = try Sweep.parseList("0.1,0.2", name: "low")
        let highs = try Sweep.parseList("0.15, 0.7", name: "high")
        let points = Sweep.points(lows: lows, highs: highs, root: root)
        // (0.2, 0.15) is not a band: skipped.
        XCTAssertEqual(points.map { [$0.low, $0.high] }, [[0.1, 0.15], [0.1, 0.7], [0.2, 0.7]])
        XCTAssertEqual(points[1].workDir, root + "/low0.1_high0.7")
        let planted: [String: (Double, Double)] = ["low0.1_high0.15": (0.3125, 0.1875), "low0.2_high0.7": (0.4523, 0.2277)]
        for (name, v) in planted { try writeRun(root + "/" + name, fog: v.0, night: v.1) }
        // low0.1_high0.7 never ran.
        let results = Sweep.collect(points)
        XCTAssertEqual(results[0].miou!, (0.3125 + 0.1875) / 2, accuracy: 1e-15)
        XCTAssertNil(results[1].miou)
        XCTAssertTrue(results[1].note!.contains("low0.1_high0.7: no such work directory"), results[1].note!)
        XCTAssertEqual(results[2].miou!, (0.4523 + 0.2277) / 2, accuracy: 1e-15)
        XCTAssertEqual(results[2].step, 100)

        // CSV round trip.
        let csv = Sweep.csv(results)
        let rows = csv.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        XCTAssertEqual(rows[0], ["low", "high", "mean_miou", "step", "fog", "night", "source", "work_dir"])
        XCTAssertEqual(rows.count, 4)
        var fromCSV: [String: Double] = [:]
        for r in rows.dropFirst() where !r[2].isEmpty { fromCSV["\(r[0])/\(r[1])"] = Double(r[2]) }
        XCTAssertEqual(fromCSV.count, 2)
        XCTAssertEqual(fromCSV["0.1/0.15"], results[0].miou)
        XCTAssertEqual(fromCSV["0.2/0.7"], results[2].miou)

        // Heat map: rows low, columns high; the printed cells are the CSV values in percent.
        let map = Sweep.heatMap(results, lows: lows, highs: highs)
        XCTAssertEqual(map.rowLabels, ["0.1", "0.2"])
        XCTAssertEqual(map.columnLabels, ["0.15", "0.7"])
        XCTAssertEqual(map.values[0][0], fromCSV["0.1/0.15"])
        XCTAssertNil(map.values[0][1])
        XCTAssertNil(map.values[1][0])
        XCTAssertEqual(map.values[1][1], fromCSV["0.2/0.7"])
        XCTAssertEqual(map.cellTexts, [[String(format: "%.1f", 100 * fromCSV["0.1/0.15"]!), "-"],
                                       ["-", String(format: "%.1f", 100 * fromCSV["0.2/0.7"]!)]])
        XCTAssertEqual(map.cellTexts[1][1], "34.0")
        let img = map.render()
        XCTAssertGreaterThan(img.width, 2 * map.cellSize)
        XCTAssertGreaterThan(img.height, 2 * map.cellSize)
    }

    func testBadCutoffListsAreOneClearLine() {
        XCTAssertThrowsError(try Sweep.parseList("0.1,abc", name: "low")) { e in
            XCTAssertEqual((e as? CausalTuneError)?.message, "--low: 'abc' is not a positive number (expected e.g. 0.1,0.2,0.3)")
        }
        XCTAssertThrowsError(try Sweep.parseList("", name: "high"))
        XCTAssertThrowsError(try Sweep.parseList("-0.2", name: "high"))
    }

    func testSegmentationPicturesUsePaletteAndMarkErrorsRed() {
        let gt = LabelMap(width: 3, height: 1, labels: [0, 13, 255])
        let pred = LabelMap(width: 3, height: 1, labels: [0, 2, 5])
        let col = SegmentationPicture.colorize(pred)
        XCTAssertEqual(col[0, 0], RGB(128, 64, 128))   // road
        let err = SegmentationPicture.errorMap(prediction: pred, groundTruth: gt)
        XCTAssertEqual(err[1, 0], RGB(255, 0, 0))
        XCTAssertEqual(err[2, 0], RGB.black)
        XCTAssertNotEqual(err[0, 0], RGB(255, 0, 0))
        let image = RGBImage(width: 3, height: 1, fill: 200)
        let ov = SegmentationPicture.overlay(image, gt, alpha: 0.5)
        XCTAssertEqual(ov[0, 0], RGB(164, 132, 164))
        XCTAssertEqual(ov[2, 0], RGB(200, 200, 200))
    }
}
