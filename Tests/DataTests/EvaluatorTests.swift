import Data
import Evaluation
import Foundation
import ImageIO
import Numerics
import XCTest

final class EvaluatorTests: XCTestCase {
    func testWindowsFollowMMSegSlideInference() {
        let w = SlidingWindow(cropWidth: 8, cropHeight: 8, strideWidth: 5, strideHeight: 5).windows(height: 10, width: 25)
        XCTAssertEqual(w.count, 10)
        XCTAssertEqual(w.map(\.y1), [0, 0, 0, 0, 0, 2, 2, 2, 2, 2])
        XCTAssertEqual(w.prefix(5).map(\.x1), [0, 5, 10, 15, 17], "the border window is shifted back inside")
        XCTAssertTrue(w.allSatisfy { $0.x2 - $0.x1 == 8 && $0.y2 - $0.y1 == 8 })
        let small = SlidingWindow().windows(height: 100, width: 200)
        XCTAssertEqual(small.count, 1); XCTAssertEqual(small[0].x2, 200)
        let ref = SlidingWindow().windows(height: 512, width: 1024)  // Cityscapes at 1024×512
        XCTAssertEqual(ref.map(\.x1), [0, 341, 512])
    }

    /// A per-pixel model: logits_k = −|R − 10k| with R the un-normalised red value.
    static func pixelModel(_ x: Tensor) -> Tensor {
        let h = x.shape[2], w = x.shape[3], K = 19
        let out = Tensor(zeros: [1, K, h, w])
        for i in 0..<(h * w) {
            let r = x.data[i] * ImageNormalization.imagenet.std[0] + ImageNormalization.imagenet.mean[0]
            for k in 0..<K { out.data[k * h * w + i] = -abs(r - Float(10 * k)) }
        }
        return out
    }

    func testOverlapsAreAveragedAndLocalModelsAreUnchanged() throws {
        var rng = RandomGenerator(seed: 4)
        let x = Tensor(zeros: [1, 3, 11, 17]); rng.fillNormal(x)
        let slid = try Evaluator.slideInference(x, numClasses: 19, window: SlidingWindow(cropWidth: 6, cropHeight: 5, strideWidth: 4, strideHeight: 3), model: Self.pixelModel)
        let whole = Self.pixelModel(x)
        for (a, b) in zip(slid.array, whole.array) { XCTAssertEqual(a, b, accuracy: 1e-4) }
        // a model returning 1 on class 0 everywhere of its window, scaled by the window's x1:
        // each pixel gets the mean x1 of the windows covering it
        let win = SlidingWindow(cropWidth: 4, cropHeight: 4, strideWidth: 2, strideHeight: 4)
        var calls: [Int] = []
        let big = Tensor(zeros: [1, 3, 4, 8])
        for c in 0..<3 { for y in 0..<4 { for xx in 0..<8 { big.data[(c * 4 + y) * 8 + xx] = Float(xx) } } }
        let out = try Evaluator.slideInference(big, numClasses: 1, window: win) { t in
            let x1 = Int(t.data[0]); calls.append(x1)
            return Tensor(shape: [1, 1, 4, 4], repeating: Float(x1))
        }
        XCTAssertEqual(calls, [0, 2, 4])
        let expect: [Float] = [0, 0, 1, 1, 3, 3, 4, 4]
        for xx in 0..<8 { XCTAssertEqual(out.data[xx], expect[xx], accuracy: 1e-6) }
    }

    /// `SlidingWindow.batch`: the windows of an image go to the model up to `batch` at a time
    /// ([n, 3, h, w]), and the averaged logits are the same bits as one window per call.
    func testBatchedWindowsSumTheSameBits() throws {
        var rng = RandomGenerator(seed: 5)
        let x = Tensor(zeros: [1, 3, 13, 23]); rng.fillNormal(x)
        var window = SlidingWindow(cropWidth: 6, cropHeight: 5, strideWidth: 4, strideHeight: 3)
        var sizes: [Int] = []
        // per window: the pixel model plus a window-dependent offset (its first value)
        let model: SegmentationModel = { t in
            let n = t.shape[0], h = t.shape[2], w = t.shape[3], K = 19
            sizes.append(n)
            let out = Tensor(zeros: [n, K, h, w])
            for b in 0..<n {
                let one = Tensor(zeros: [1, 3, h, w])
                one.data.update(from: t.data + b * 3 * h * w, count: 3 * h * w)
                let l = Self.pixelModel(one)
                for i in 0..<(K * h * w) { out.data[b * K * h * w + i] = l.data[i] * 0.37 + t.data[b * 3 * h * w] }
            }
            return out
        }
        let single = try Evaluator.slideInference(x, numClasses: 19, window: window, model: model)
        let count = sizes.count
        XCTAssertEqual(sizes, [Int](repeating: 1, count: count))
        sizes = []
        window.batch = 4
        let batched = try Evaluator.slideInference(x, numClasses: 19, window: window, model: model)
        XCTAssertEqual(sizes.reduce(0, +), count)
        XCTAssertEqual(sizes.max(), 4)
        XCTAssertEqual(single.array, batched.array)
    }

    func makeFolder(_ dir: String, count: Int) throws {
        var rng = RandomGenerator(seed: 8)
        for n in 0..<count {
            var lab = LabelMap(width: 32, height: 16), img = RGBImage(width: 32, height: 16)
            for by in 0..<4 { for bx in 0..<8 {
                let c = UInt8([0, 1, 2, 8, 10, 13, 11, 255][rng.integer(below: 8)])
                for y in 0..<4 { for x in 0..<4 {
                    lab[by * 4 + y, bx * 4 + x] = c
                    img[by * 4 + y, bx * 4 + x, 0] = c == 255 ? 250 : c * 10
                } }
            } }
            try ImageIO.writePNG(img, to: "\(dir)/images/im\(n).png")
            try ImageIO.writePNG(lab, to: "\(dir)/labels/im\(n).png")
        }
    }

    func testPerfectModelScoresOneAndAbsentClassesAreNull() throws {
        let dir = try makeTempDir(self)
        try makeFolder(dir, count: 3)
        let ds = try Dataset(kind: .folder, root: dir)
        let m = try Evaluator.evaluate(dataset: ds, model: Self.pixelModel,
                                       window: SlidingWindow(cropWidth: 12, cropHeight: 12, strideWidth: 8, strideHeight: 8),
                                       savePredictions: dir + "/pred")
        for c in [0, 1, 2, 8, 10, 11, 13] { XCTAssertEqual(m.iou[c]!, 1, accuracy: 1e-12) }
        for c in [3, 4, 5, 6, 7, 9, 12, 14, 15, 16, 17, 18] { XCTAssertNil(m.iou[c]) }
        XCTAssertEqual(m.miou!, 1, accuracy: 1e-12)
        // the saved predictions score the same with `score`
        let s = try Score.run(predDir: dir + "/pred", gtDir: dir + "/labels", encoding: .trainId)
        XCTAssertEqual(s.metrics, m)
        // keep-ratio downscale then bilinear logits back up: still near perfect on 4×4 blocks
        let half = try Evaluator.evaluate(dataset: ds, model: Self.pixelModel, window: SlidingWindow(crop: 16, stride: 10),
                                          scale: .some((width: 16, height: 8)))
        XCTAssertGreaterThan(half.miou!, 0.6)
        XCTAssertEqual(half.pixels, m.pixels, "evaluated at the original label resolution")
        let report = EvaluationReport(domains: [("a", m), ("b", half)])
        XCTAssertEqual(report.meanMIoU!, (1 + half.miou!) / 2, accuracy: 1e-12)
        XCTAssertTrue(report.json.contains("\"mean_miou\""))
        XCTAssertTrue(report.table.contains("mIoU"))
    }

    func testRankSharesSumToTheWholeSplit() throws {
        let dir = try makeTempDir(self)
        try makeFolder(dir, count: 5)
        let ds = try Dataset(kind: .folder, root: dir)
        // a deliberately imperfect model: shifted by one class
        let model: SegmentationModel = { x in
            let o = Self.pixelModel(x)
            let n = x.shape[2] * x.shape[3]
            let r = Tensor(zeros: o.shape)
            for k in 0..<19 { for i in 0..<n { r.data[k * n + i] = o.data[((k + (i % 7 == 0 ? 1 : 0)) % 19) * n + i] } }
            return r
        }
        let win = SlidingWindow(crop: 16, stride: 11)
        let whole = try Evaluator.confusion(dataset: ds, model: model, window: win, scale: nil)
        for world in [2, 3] {
            var sum = ConfusionMatrix()
            for r in 0..<world { sum.add(try Evaluator.confusion(dataset: ds, model: model, window: win, scale: nil, rank: r, world: world)) }
            XCTAssertEqual(sum, whole)
        }
        XCTAssertLessThan(whole.metrics().miou!, 1)
    }

    func testEvaluationJSONLayout() {
        let m = SegmentationMetrics(classNames: ["road", "sky \"x\""], iou: [0.25, nil], pixels: 42)
        XCTAssertEqual(m.jsonObjectText, #"{"miou": 0.25, "iou": {"road": 0.25, "sky \"x\"": null}, "pixels": 42}"#)
        let none = SegmentationMetrics(classNames: ["road"], iou: [nil], pixels: 0)
        XCTAssertEqual(EvaluationReport(domains: [("a", m), ("b", none)]).json,
                       #"{"a": {"miou": 0.25, "iou": {"road": 0.25, "sky \"x\"": null}, "pixels": 42}, "#
                       + #""b": {"miou": null, "iou": {"road": null}, "pixels": 0}, "mean_miou": 0.25}"#)
    }
}
