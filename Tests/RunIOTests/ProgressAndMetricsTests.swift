import Foundation
import Logging
import RunIO
import XCTest

final class ProgressAndMetricsTests: XCTestCase {
    final class Clock { var now: TimeInterval = 100 }

    func testPlainProgressPrintsPeriodicLinesWithRateAndETA() {
        let clock = Clock()
        var lines: [String] = []
        let progress = Progress(label: "train", total: 1000, isTerminal: false, plainInterval: 30,
                                write: { lines.append($0) }, clock: { clock.now })
        progress.update(to: 0)                     // first update: a line, starts the clock
        clock.now += 10
        progress.update(to: 20, extra: "loss 1.5")  // not due yet
        XCTAssertEqual(lines.count, 1)
        clock.now += 30
        progress.update(to: 100, extra: "loss 1.25")
        XCTAssertEqual(lines.count, 2)
        // 100 items in 40 s = 2.50 it/s; 900 left → 360 s.
        XCTAssertEqual(lines[1], "train   100/1000   10.0%  2.50 it/s  ETA 6:00  loss 1.25\n")
        clock.now += 40
        progress.update(to: 1000)
        progress.finish(extra: "done")
        XCTAssertEqual(lines.last, "train  1000/1000  100.0%  12.50 it/s  in 1:20  done\n")
        XCTAssertTrue(lines.allSatisfy { !$0.contains("\r") })
    }

    func testTerminalProgressRedrawsOneLineAndShowsSecondsPerItemWhenSlow() {
        let clock = Clock()
        var output = ""
        let progress = Progress(label: "eval", total: 10, unit: "img", isTerminal: true,
                                write: { output += $0 }, clock: { clock.now })
        progress.update(to: 0)
        clock.now += 8
        progress.update(to: 2)
        XCTAssertTrue(output.hasSuffix("\reval   2/10   20.0%  4.00 s/img  ETA 0:32"), output)
        XCTAssertFalse(output.contains("\n"))
        clock.now += 32
        progress.update(to: 10)
        progress.finish()
        XCTAssertTrue(output.hasSuffix("in 0:40\n"), output)
        XCTAssertEqual(output.filter { $0 == "\n" }.count, 1)
    }

    func testDurationAndRateFormats() {
        XCTAssertEqual(Progress.formatDuration(59.6), "1:00")
        XCTAssertEqual(Progress.formatDuration(3725), "1:02:05")
        XCTAssertEqual(Progress.formatDuration(90061), "1d 1:01:01")
        XCTAssertEqual(Progress.formatDuration(.infinity), "?")
        XCTAssertEqual(Progress.formatRate(2.414, unit: "it"), "2.41 it/s")
        XCTAssertEqual(Progress.formatRate(0.25, unit: "it"), "4.00 s/it")
    }

    func testMetricsAreAppendedOneJSONObjectPerLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("metrics-\(UUID().uuidString)/run")
        defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
        do {
            let writer = try MetricsWriter(workDir: dir.path)
            try writer.write(["step": 50, "loss": 1.2345678901234567, "lr": 9.98e-05, "phase": "train"])
            try writer.write(["step": 100, "miou": .number(nil), "nan": .double(.nan), "iou": .object([("road", 0.5)]),
                              "ok": true, "sizes": [1, 2]])
        }
        // Reopening appends.
        try MetricsWriter(workDir: dir.path).write(["step": 150])
        let text = try String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        let lines = text.split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        XCTAssertEqual(lines[0], #"{"step": 50, "loss": 1.2345678901234567, "lr": 9.98e-05, "phase": "train"}"#)
        XCTAssertEqual(lines[1], #"{"step": 100, "miou": null, "nan": null, "iou": {"road": 0.5}, "ok": true, "sizes": [1, 2]}"#)
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            XCTAssertNotNil(object, String(line))
        }
    }

    func testRunLogWritesTimestampedLinesAndServesSwiftLog() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("log-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("train.log").path
        let log = try RunLog(path: path, echo: false)
        log.info("step 50  loss 1.2")
        log.warning("non-finite loss at step 51, skipped")
        var logger = log.logger(label: "causal-tune")
        logger[metadataKey: "rank"] = "0"
        logger.info("evaluating", metadata: ["domain": "citys"])
        logger.debug("not shown")
        logger.error("failed")
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 4)
        let stamp = #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  "#
        for line in lines { XCTAssertNotNil(line.range(of: stamp, options: .regularExpression), line) }
        XCTAssertTrue(lines[0].hasSuffix("  step 50  loss 1.2"))
        XCTAssertTrue(lines[1].hasSuffix("  warning: non-finite loss at step 51, skipped"))
        XCTAssertTrue(lines[2].hasSuffix("  evaluating  domain=citys rank=0"), lines[2])
        XCTAssertTrue(lines[3].hasSuffix("  error: failed  rank=0"), lines[3])
    }
}
