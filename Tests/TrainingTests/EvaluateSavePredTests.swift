import Foundation
import ImageIO
import Numerics
import XCTest

/// End-to-end `causal-tune evaluate --save-pred` (the binary built by `launch/test`): a tiny
/// random ViT trained one step on a 5-image `folder` dataset, evaluated in one process and
/// under `mpirun -np 2`; the saved predictions are read back with `causal-tune score`.
final class EvaluateSavePredTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        try CommandLineRunner.requireBinary()
        dir = NSTemporaryDirectory() + "ct-savepred-\(UUID().uuidString)"
        // Five 44×30 images (not square, not a multiple of the window) with an ignored band.
        var rng = RandomGenerator(seed: 5)
        for i in 0..<5 {
            var img = RGBImage(width: 44, height: 30)
            var lab = LabelMap(width: 44, height: 30)
            for y in 0..<30 { for x in 0..<44 {
                let cls = y < 10 ? 10 : (x < 22 ? 0 : 13)
                lab[y, x] = y == 20 ? 255 : UInt8(cls)
                for c in 0..<3 { img[y, x, c] = UInt8(clamping: 30 + cls * 12 + c * 25 + rng.integer(below: 50)) }
            } }
            try ImageIO.writePNG(img, to: dir + "/data/images/im\(i).png")
            try ImageIO.writePNG(lab, to: dir + "/data/labels/im\(i).png")
        }
        let config = """
        model:
          backbone: {arch: dinov2_vitt14, weights: random, image_size: 28, patch_size: 14}
          peft: {method: causal_tune, tokens: 8}
          head: {type: linear, num_classes: 19}
        data:
          train: {dataset: folder, root: \(dir)/data, split: train}
          val: [{dataset: folder, root: \(dir)/data, split: val, name: tiny}]
          crop_size: 28
          augment: none
        train: {seed: 3, iters: 2, batch_size: 2, lr: 0.01, log_every: 1, eval_every: 0, checkpoint_every: 2, keep: 0}
        """
        try config.write(toFile: dir + "/tiny.yaml", atomically: true, encoding: .utf8)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    @discardableResult
    private func run(_ args: [String], ranks: Int = 1) throws -> (Int32, String) {
        try CommandLineRunner.run(args, ranks: ranks)
    }

    private func json(_ path: String) throws -> [String: Any] {
        let d = try Data(contentsOf: URL(fileURLWithPath: path))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: d) as? [String: Any])
    }

    func testSavedPredictionsScoreExactlyLikeEvaluateOnOneAndTwoRanks() throws {
        let (ts, tout) = try run(["train", "--config", dir + "/tiny.yaml", "--work-dir", dir + "/work"])
        XCTAssertEqual(ts, 0, tout)
        let ckpt = dir + "/work/iter_2.h5"
        var files: [String: [String: Data]] = [:]
        for ranks in [1, 2] {
            let pred = dir + "/pred\(ranks)"
            let (s, out) = try run(["evaluate", "--config", dir + "/tiny.yaml", "--checkpoint", ckpt,
                                    "--work-dir", dir + "/eval\(ranks)", "--save-pred", pred], ranks: ranks)
            XCTAssertEqual(s, 0, out)
            let names = try FileManager.default.contentsOfDirectory(atPath: pred + "/tiny").sorted()
            XCTAssertEqual(names, (0..<5).flatMap { ["im\($0).png", "im\($0)_color.png", "im\($0)_error.png", "im\($0)_overlay.png"] }.sorted())
            var contents: [String: Data] = [:]
            for n in names { contents[n] = try Data(contentsOf: URL(fileURLWithPath: pred + "/tiny/" + n)) }
            files["\(ranks)"] = contents
            for i in 0..<5 {
                let p = try ImageIO.readLabels("\(pred)/tiny/im\(i).png")
                XCTAssertEqual(p.width, 44); XCTAssertEqual(p.height, 30)
                XCTAssertTrue(p.labels.allSatisfy { $0 <= 18 })
                let gt = try ImageIO.readLabels("\(dir)/data/labels/im\(i).png")
                let err = try ImageIO.readRGB("\(pred)/tiny/im\(i)_error.png")
                for j in 0..<(44 * 30) {
                    let red = err.pixels[3 * j] == 255 && err.pixels[3 * j + 1] == 0 && err.pixels[3 * j + 2] == 0
                    XCTAssertEqual(red, gt.labels[j] != 255 && p.labels[j] != gt.labels[j])
                }
            }
            let (ss, sout) = try run(["score", "--pred", pred + "/tiny", "--gt", dir + "/data/labels", "--json", dir + "/score\(ranks).json"])
            XCTAssertEqual(ss, 0, sout)
            let eval = try XCTUnwrap(try json(dir + "/eval\(ranks)/eval_iter_2.json")["tiny"] as? [String: Any])
            let score = try json(dir + "/score\(ranks).json")
            XCTAssertEqual(score["miou"] as? Double, eval["miou"] as? Double)
            XCTAssertEqual(score["pixels"] as? Int, 5 * 44 * 29)
            XCTAssertEqual(score["pixels"] as? Int, eval["pixels"] as? Int)
            XCTAssertEqual(score["iou"] as? NSDictionary, eval["iou"] as? NSDictionary)
        }
        XCTAssertEqual(files["1"], files["2"], "rank 0 writes every image, the same files as one process")
    }

    func testUnwritableSavePredIsOneClearLine() throws {
        try "x".write(toFile: dir + "/a-file", atomically: true, encoding: .utf8)
        let (s, out) = try run(["evaluate", "--config", dir + "/tiny.yaml", "--checkpoint", dir + "/missing.h5",
                                "--save-pred", dir + "/a-file/pred"])
        XCTAssertNotEqual(s, 0)
        XCTAssertEqual(out, "causal-tune: \(dir)/a-file/pred: cannot create the --save-pred directory\n")
    }
}
