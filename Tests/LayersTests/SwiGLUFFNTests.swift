import XCTest
import Foundation
import Numerics
import Layers

final class SwiGLUFFNTests: XCTestCase {
    func testDINOv2GiantHiddenSizeIs4096() {
        // dinov2/layers/swiglu_ffn.py: hidden = (int(4·C · 2/3) + 7) // 8 * 8
        XCTAssertEqual(SwiGLUFFN.hiddenSize(channels: 1536), 4096)
        XCTAssertEqual(SwiGLUFFN.hiddenSize(channels: 384), 1024)
        XCTAssertEqual(SwiGLUFFN.hiddenSize(channels: 10), 32)  // int(26.67) = 26 → 32
    }

    func testSwiGLUForwardSplitsW12OutputIntoGateAndValueHalves() {
        var rng = RandomGenerator(seed: 41)
        let ffn = SwiGLUFFN(channels: 4, hiddenChannels: 3)
        randomize(ffn, &rng)
        let x = randomTensor([2, 4], &rng)
        let y = ffn(x)
        let x12 = ffn.w12(x)
        let h = Tensor(zeros: [2, 3])
        for r in 0..<2 {
            for j in 0..<3 {
                let a = x12[r, j], b = x12[r, 3 + j]  // chunk(2, dim=-1): first half gated by silu
                h[r, j] = a / (1 + exp(-a)) * b
            }
        }
        XCTAssertLessThan(maxAbsDiff(y, ffn.w3(h)), 1e-5)
        XCTAssertEqual(ffn.namedParameters.map(\.name), ["w12.weight", "w12.bias", "w3.weight", "w3.bias"])
        XCTAssertEqual(ffn.w12.weight.shape, [6, 4])
    }

    func testSwiGLUFFNGradientMatchesFiniteDifferences() {
        var rng = RandomGenerator(seed: 42)
        let ffn = SwiGLUFFN(channels: 5, hiddenChannels: 4)
        randomize(ffn, &rng)
        checkLayer(LayerUnderTest(module: ffn, input: randomTensor([2, 3, 5], &rng),
                                  forward: { ffn($0) },
                                  backward: { ffn.backward(dOutput: $0, input: $1, dInput: $2) },
                                  backwardInput: { ffn.backwardInput(dOutput: $0, input: $1, dInput: $2) }))
    }
}
