import XCTest
import Foundation
import Numerics
import Layers

final class PixelCrossEntropyTests: XCTestCase {
    func testLossMatchesPyTorchCrossEntropyWithIgnoreIndex() {
        // logits [1, 3, 2, 2], labels [[0, 2], [255, 1]];
        // F.cross_entropy(x, lab, ignore_index=255) = 0.5120252966880798
        let logits = Tensor(shape: [1, 3, 2, 2], values: [0.5, -1.0, 2.0, 0.0,
                                                          1.0, 0.0, -0.5, 3.0,
                                                          -2.0, 1.0, 0.0, 0.5])
        let r = PixelCrossEntropy.forwardBackward(logits: logits, labels: [0, 2, 255, 1], dLogits: nil)
        XCTAssertEqual(r.loss, 0.5120252966880798, accuracy: 1e-6)
        XCTAssertEqual(r.validPixels, 3)
        XCTAssertEqual(r.outOfRangePixels, 0)
    }

    func testCrossEntropyGradientMatchesFiniteDifferencesAndAccumulates() {
        var rng = RandomGenerator(seed: 71)
        let (B, K, H, W) = (2, 4, 3, 5)
        let logits = randomTensor([B, K, H, W], &rng, scale: 2)
        let labels: [UInt8] = (0..<(B * H * W)).map { i in i % 7 == 3 ? 255 : UInt8(i % K) }
        let d = Tensor(zeros: logits.shape)
        let r = PixelCrossEntropy.forwardBackward(logits: logits, labels: labels, dLogits: d)
        XCTAssertEqual(r.validPixels, labels.filter { $0 != 255 }.count)
        let eps: Float = 1e-2
        for i in 0..<logits.count {
            let saved = logits.data[i]
            logits.data[i] = saved + eps
            let fp = PixelCrossEntropy.forwardBackward(logits: logits, labels: labels, dLogits: nil).loss
            logits.data[i] = saved - eps
            let fm = PixelCrossEntropy.forwardBackward(logits: logits, labels: labels, dLogits: nil).loss
            logits.data[i] = saved
            XCTAssertEqual(Double(d.data[i]), (fp - fm) / Double(2 * eps), accuracy: 2e-4)
        }
        // gradients of ignored pixels are zero
        let p = 3  // label index 3 is 255 (b = 0, y = 0, x = 3)
        for k in 0..<K { XCTAssertEqual(d[0, k, 0, p], 0) }
        // a second call accumulates
        let before = d.clone()
        _ = PixelCrossEntropy.forwardBackward(logits: logits, labels: labels, dLogits: d)
        XCTAssertLessThan(maxAbsDiff(d, scaled(before, 2)), 1e-6)
    }

    func testNormalizerOverridesValidCountAndOutOfRangeLabelsAreCounted() {
        let logits = Tensor(shape: [1, 2, 1, 3], values: [1, 2, 3, 0, 0, 0])
        let mean = PixelCrossEntropy.forwardBackward(logits: logits, labels: [0, 1, 7], dLogits: nil)
        XCTAssertEqual(mean.validPixels, 2)
        XCTAssertEqual(mean.outOfRangePixels, 1)
        let global = PixelCrossEntropy.forwardBackward(logits: logits, labels: [0, 1, 7], dLogits: nil, normalizer: 8)
        XCTAssertEqual(global.loss, mean.lossSum / 8, accuracy: 1e-12)
        let none = PixelCrossEntropy.forwardBackward(logits: logits, labels: [255, 255, 255], dLogits: Tensor(zeros: [1, 2, 1, 3]))
        XCTAssertEqual(none.loss, 0)
    }
}
