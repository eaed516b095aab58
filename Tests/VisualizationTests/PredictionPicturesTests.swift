import Core
import Data
import Evaluation
import Foundation
import ImageIO
import Numerics
import Visualization
import XCTest

/// `evaluate --save-pred`: the evaluator's predictions written by `PredictionPictures`, on a
/// tiny `folder` dataset with a per-pixel model (no network), then read back with `score`.
final class PredictionPicturesTests: XCTestCase {
    private func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "viz-pred-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    /// Three 30×18 images of 6×6 blocks: red channel 10·k for class k (ignored blocks 250),
    /// labels k or 255.
    private func makeFolder(_ root: String, count: Int = 3) throws {
        var rng = RandomGenerator(seed: 11)
        for n in 0..<count {
            var lab = LabelMap(width: 30, height: 18), img = RGBImage(width: 30, height: 18)
            for by in 0..<3 { for bx in 0..<5 {
                let c = UInt8([0, 1, 2, 8, 10, 13, 18, 255][rng.integer(below: 8)])
                for y in 0..<6 { for x in 0..<6 {
                    lab[by * 6 + y, bx * 6 + x] = c
                    img[by * 6 + y, bx * 6 + x, 0] = c == 255 ? 250 : c * 10
                    img[by * 6 + y, bx * 6 + x, 1] = UInt8(40 + 20 * by)
                } }
            } }
            try ImageIO.writePNG(img, to: "\(root)/images/scene_\(n)_leftImg8bit.png")
            try ImageIO.writePNG(lab, to: "\(root)/labels/scene_\(n).png")
        }
    }

    /// logits_k = −|R − 10k| (R the un-normalised red value), with every 5th pixel shifted
    /// to the next class — a model that is right on most pixels and wrong on some.
    private static func model(_ x: Tensor) -> Tensor {
        let h = x.shape[2], w = x.shape[3], K = 19, n = h * w
        let out = Tensor(zeros: [1, K, h, w])
        for i in 0..<n {
            let r = x.data[i] * ImageNormalization.imagenet.std[0] + ImageNormalization.imagenet.mean[0]
            for k in 0..<K { out.data[((k + (i % 5 == 0 ? 1 : 0)) % K) * n + i] = -abs(r - Float(10 * k)) }
        }
        return out
    }

    func testSavedPredictionsHaveLabelSizeTrainIdsRedErrorsAndScoreLikeEvaluation() throws {
        let root = try tempDir()
        try makeFolder(root)
        let ds = try Dataset(kind: .folder, root: root, name: "tiny")
        let pictures = try PredictionPictures(directory: root + "/pred")
        // Evaluated at a smaller keep-ratio size (logits resized back): files at the label's size.
        for scale in [nil, (width: 20, height: 12)] as [(width: Int, height: Int)?] {
            let m = try Evaluator.evaluate(dataset: ds, model: Self.model, window: SlidingWindow(crop: 16, stride: 10),
                                           scale: .some(scale), predictions: pictures.sink)
            XCTAssertLessThan(m.miou!, 1); XCTAssertGreaterThan(m.miou!, 0.3)
            for i in 0..<ds.count {
                let (_, gt) = try ds.load(i)
                let p = pictures.paths(domain: "tiny", stem: "scene_\(i)")
                XCTAssertTrue(p.trainIds.hasSuffix("/pred/tiny/scene_\(i).png"))
                let pred = try ImageIO.readLabels(p.trainIds)
                XCTAssertEqual(pred.width, 30); XCTAssertEqual(pred.height, 18)
                XCTAssertTrue(pred.labels.allSatisfy { $0 <= 18 }, "train ids 0…18")
                for path in [p.color, p.overlay, p.error] {
                    XCTAssertEqual(try ImageIO.size(path).width, 30); XCTAssertEqual(try ImageIO.size(path).height, 18)
                }
                let color = try ImageIO.readRGB(p.color), err = try ImageIO.readRGB(p.error)
                var wrong = 0
                for j in 0..<(30 * 18) {
                    let e = (err.pixels[3 * j], err.pixels[3 * j + 1], err.pixels[3 * j + 2])
                    let isRed = e == (255, 0, 0), isBlack = e == (0, 0, 0)
                    if gt.labels[j] == 255 {
                        XCTAssertTrue(isBlack, "ignored pixel \(j) is black")
                    } else {
                        XCTAssertEqual(isRed, pred.labels[j] != gt.labels[j], "pixel \(j): red exactly where wrong")
                        XCTAssertFalse(isBlack)
                        if isRed { wrong += 1 }
                    }
                    let c = Cityscapes.palette[Int(pred.labels[j])]
                    XCTAssertTrue(color.pixels[3 * j] == c.0 && color.pixels[3 * j + 1] == c.1 && color.pixels[3 * j + 2] == c.2)
                }
                XCTAssertGreaterThan(wrong, 0)
            }
            // `score` over the saved folder reproduces the evaluation exactly.
            let s = try Score.run(predDir: root + "/pred/tiny", gtDir: root + "/labels")
            XCTAssertEqual(s.images, 3)
            XCTAssertEqual(s.metrics, m)
        }
    }

    func testUnusableSavePredPathIsOneClearLine() throws {
        let root = try tempDir()
        let file = root + "/a-file"
        try "x".write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try PredictionPictures(directory: file + "/sub")) { e in
            XCTAssertEqual((e as? CausalTuneError)?.message, "\(file)/sub: cannot create the --save-pred directory")
        }
        XCTAssertThrowsError(try PredictionPictures(directory: file)) { e in
            XCTAssertEqual((e as? CausalTuneError)?.message, "\(file): --save-pred path exists and is not a directory")
        }
        if getuid() != 0 {   // root writes anywhere
            let ro = root + "/read-only"
            try FileManager.default.createDirectory(atPath: ro, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o555])
            XCTAssertThrowsError(try PredictionPictures(directory: ro)) { e in
                XCTAssertEqual((e as? CausalTuneError)?.message, "\(ro): --save-pred directory is not writable")
            }
        }
        let ok = try PredictionPictures(directory: root + "/new/pred")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: ok.directory), [], "the probe file is removed")
    }

    func testImagesSharingAStemAreRefused() throws {
        let root = try tempDir()
        try makeFolder(root, count: 1)
        let img = try ImageIO.readRGB(root + "/images/scene_0_leftImg8bit.png")
        try ImageIO.writePNG(img, to: root + "/images/scene_0.png")   // same stem as scene_0_leftImg8bit
        let ds = try Dataset(kind: .folder, root: root, name: "dup")
        let pictures = try PredictionPictures(directory: root + "/pred")
        XCTAssertThrowsError(try Evaluator.evaluate(dataset: ds, model: Self.model, window: SlidingWindow(crop: 16, stride: 10),
                                                    scale: .some(nil), predictions: pictures.sink)) { e in
            XCTAssertTrue((e as? CausalTuneError)?.message.contains("--save-pred needs distinct image stems, 'scene_0'") ?? false, "\(e)")
        }
    }
}
