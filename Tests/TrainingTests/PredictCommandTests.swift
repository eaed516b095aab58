import Data
import Foundation
import ImageIO
import Numerics
import XCTest

/// End-to-end `causal-tune predict` (the binary built by `launch/test`): a tiny random ViT
/// trained one step on a `folder` dataset; predictions of a folder tree of mixed PNG/JPEG
/// images of different sizes, in one process and under `mpirun -np 2`; equality with
/// `evaluate --save-pred`; the val entry's `scale` key; unreadable inputs; Rein checkpoints.
final class PredictCommandTests: XCTestCase {
    private var dir = ""
    private let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()

    private func image(_ w: Int, _ h: Int, seed: UInt64) -> (RGBImage, LabelMap) {
        var rng = RandomGenerator(seed: seed)
        var img = RGBImage(width: w, height: h)
        var lab = LabelMap(width: w, height: h)
        for y in 0..<h { for x in 0..<w {
            let cls = y < h / 3 ? 10 : (x < w / 2 ? 0 : 13)
            lab[y, x] = UInt8(cls)
            for c in 0..<3 { img[y, x, c] = UInt8(clamping: 30 + cls * 12 + c * 25 + rng.integer(below: 50)) }
        } }
        return (img, lab)
    }

    override func setUpWithError() throws {
        try CommandLineRunner.requireBinary()
        dir = NSTemporaryDirectory() + "ct-predict-\(UUID().uuidString)"
        for (i, size) in [(44, 30), (30, 44), (29, 29)].enumerated() {
            let (img, lab) = image(size.0, size.1, seed: UInt64(i))
            try ImageIO.writePNG(img, to: dir + "/data/images/im\(i)_leftImg8bit.png")
            try ImageIO.writePNG(lab, to: dir + "/data/labels/im\(i).png")
        }
        // Inputs without labels: nested folders, PNG and JPEG, several sizes.
        try ImageIO.writePNG(image(50, 31, seed: 7).0, to: dir + "/own/a.png")
        try ImageIO.writePNG(image(20, 37, seed: 8).0, to: dir + "/own/city/b_rgb_anon.png")
        try FileManager.default.createDirectory(atPath: dir + "/own/city/deep", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: tests.path + "/DataTests/Fixtures/images/photo.jpg", toPath: dir + "/own/city/deep/c.jpg")
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: dir + "/bad.png"))
        let config = """
        model:
          backbone: {arch: dinov2_vitt14, weights: random, image_size: 28, patch_size: 14}
          peft: {method: rein, tokens: 4}
          head: {type: linear, num_classes: 19}
        data:
          train: {dataset: folder, root: \(dir)/data, split: train}
          val: [{dataset: folder, root: \(dir)/data, split: val, name: tiny}]
          crop_size: 28
          augment: none
        train: {seed: 3, iters: 1, batch_size: 2, lr: 0.01, log_every: 1, eval_every: 0, checkpoint_every: 1, keep: 0}
        """
        try config.write(toFile: dir + "/tiny.yaml", atomically: true, encoding: .utf8)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private func run(_ args: [String], ranks: Int = 1) throws -> (Int32, String) { try CommandLineRunner.run(args, ranks: ranks) }

    private func tree(_ root: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let e = FileManager.default.enumerator(atPath: root)
        while let rel = e?.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + rel, isDirectory: &isDir), !isDir.boolValue {
                out[rel] = try Data(contentsOf: URL(fileURLWithPath: root + "/" + rel))
            }
        }
        return out
    }

    func testPredictWritesEveryOutputKeepsStructureMatchesEvaluateAndTwoRanks() throws {
        let (ts, tout) = try run(["train", "--config", dir + "/tiny.yaml", "--work-dir", dir + "/work"])
        XCTAssertEqual(ts, 0, tout)
        let ckpt = dir + "/work/iter_1.h5"

        // predict of the val images = evaluate --save-pred's train-id files, byte for byte.
        let (es, eout) = try run(["evaluate", "--config", dir + "/tiny.yaml", "--checkpoint", ckpt, "--work-dir", dir + "/ev",
                                  "--save-pred", dir + "/saved"])
        XCTAssertEqual(es, 0, eout)
        let (ps, pout) = try run(["predict", "--config", dir + "/tiny.yaml", "--checkpoint", ckpt, "--out", dir + "/pv",
                                  "--save", "trainid", dir + "/data/images"])
        XCTAssertEqual(ps, 0, pout)
        for i in 0..<3 {
            let a = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/saved/tiny/im\(i).png"))
            let b = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/pv/trainid/im\(i).png"))
            XCTAssertEqual(a, b, "im\(i)")
        }

        // A folder tree of mixed images: every kind, the input's structure, one and two ranks.
        var trees: [[String: Data]] = []
        for ranks in [1, 2] {
            let out = "\(dir)/p\(ranks)"
            let (s, text) = try run(["predict", "--config", dir + "/tiny.yaml", "--checkpoint", ckpt, "--out", out,
                                     "--save", "trainid,labelid,color,overlay", dir + "/own"], ranks: ranks)
            XCTAssertEqual(s, 0, text)
            XCTAssertTrue(text.contains("3 image(s) written"), text)
            trees.append(try tree(out))
        }
        XCTAssertEqual(Set(trees[0].keys), [
            "trainid/a.png", "trainid/city/b.png", "trainid/city/deep/c.png",
            "labelid/a.png", "labelid/city/b_rgb_anon.png", "labelid/city/deep/c.png",
            "color/a_color.png", "color/city/b_color.png", "color/city/deep/c_color.png",
            "overlay/a_overlay.png", "overlay/city/b_overlay.png", "overlay/city/deep/c_overlay.png",
        ])
        XCTAssertEqual(trees[0], trees[1], "one process and mpirun -np 2 wrote different files")
        let train = try ImageIO.readLabels("\(dir)/p1/trainid/city/b.png")
        let label = try ImageIO.readLabels("\(dir)/p1/labelid/city/b_rgb_anon.png")
        XCTAssertEqual(train.width, 20); XCTAssertEqual(train.height, 37)
        XCTAssertEqual(label.labels, train.labels.map { Cityscapes.trainIdToLabelId[Int($0)] })

        // The val entry's scale key and predict --scale resize alike.
        let (ss, sout) = try run(["evaluate", "--config", dir + "/tiny.yaml", "--checkpoint", ckpt, "--work-dir", dir + "/ev2",
                                  "--save-pred", dir + "/saved2", "--set", "data.val[0].scale=60x40"])
        XCTAssertEqual(ss, 0, sout)
        let (qs, qout) = try run(["predict", "--config", dir + "/tiny.yaml", "--checkpoint", ckpt, "--out", dir + "/pv2",
                                  "--save", "trainid", "--scale", "60x40", dir + "/data/images"])
        XCTAssertEqual(qs, 0, qout)
        for i in 0..<3 {
            let a = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/saved2/tiny/im\(i).png"))
            XCTAssertEqual(a, try Data(contentsOf: URL(fileURLWithPath: "\(dir)/pv2/trainid/im\(i).png")), "im\(i) at 60x40")
        }
        // The default (original size for folder) differs from 60x40 for at least one image.
        XCTAssertNotEqual(try tree(dir + "/pv/trainid"), try tree(dir + "/pv2/trainid"))

        // Unreadable input: one line naming it and a failure; --keep-going skips and counts.
        let (bs, bout) = try run(["predict", "--config", dir + "/tiny.yaml", "--checkpoint", ckpt, "--out", dir + "/pb",
                                  dir + "/bad.png", dir + "/own/a.png"])
        XCTAssertNotEqual(bs, 0)
        let lines = bout.split(separator: "\n").filter { $0.contains("bad.png") }
        XCTAssertEqual(lines.count, 1, bout)
        let (ks, kout) = try run(["predict", "--config", dir + "/tiny.yaml", "--checkpoint", ckpt, "--out", dir + "/pk",
                                  "--keep-going", dir + "/bad.png", dir + "/own/a.png"], ranks: 2)
        XCTAssertEqual(ks, 0, kout)
        XCTAssertTrue(kout.contains("1 unreadable image(s) skipped"), kout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/pk/trainid/a.png"))
    }

    func testBadScaleIsAConfigError() throws {
        let (s, out) = try run(["evaluate", "--config", dir + "/tiny.yaml", "--checkpoint", dir + "/none.h5",
                                "--set", "data.val[0].scale=big"])
        XCTAssertNotEqual(s, 0)
        XCTAssertTrue(out.contains("data.val[0].scale"), out)
    }

    func testReinCheckpointPredictsLikeTheNativeOne() throws {
        let fx = tests.path + "/TrainingTests/Fixtures/rein"
        var outs: [[String: Data]] = []
        for ck in ["rein_full.pth", "native_full.h5"] {
            let out = dir + "/r_" + ck
            let (s, text) = try run(["predict", "--config", dir + "/tiny.yaml", "--checkpoint", fx + "/" + ck, "--out", out,
                                     "--set", "model.peft.tokens=4", "--save", "trainid", dir + "/own"])
            XCTAssertEqual(s, 0, text)
            outs.append(try tree(out))
        }
        XCTAssertEqual(outs[0].count, 3)
        XCTAssertEqual(outs[0], outs[1])
    }
}
