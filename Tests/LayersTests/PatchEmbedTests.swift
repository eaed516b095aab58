import XCTest
import Numerics
import Layers

final class PatchEmbedTests: XCTestCase {
    /// Conv2d(kernel = stride = P) by direct loops.
    func naiveConv(_ pe: PatchEmbed, _ img: Tensor) -> [Double] {
        let (B, Cin, H, W) = (img.shape[0], img.shape[1], img.shape[2], img.shape[3])
        let P = pe.patchSize, h = H / P, w = W / P, C = pe.embedDim
        var out = [Double](repeating: 0, count: B * h * w * C)
        for b in 0..<B {
            for i in 0..<h {
                for j in 0..<w {
                    for o in 0..<C {
                        var s = Double(pe.bias!.value.data[o])
                        for c in 0..<Cin {
                            for ky in 0..<P {
                                for kx in 0..<P {
                                    s += Double(pe.weight.value[o, c, ky, kx]) * Double(img[b, c, i * P + ky, j * P + kx])
                                }
                            }
                        }
                        out[((b * h + i) * w + j) * C + o] = s
                    }
                }
            }
        }
        return out
    }

    func testPatchEmbedMatchesDirectConvolutionWithRowMajorTokens() {
        var rng = RandomGenerator(seed: 61)
        let pe = PatchEmbed(patchSize: 2, inChannels: 3, embedDim: 5)
        randomize(pe, &rng)
        let img = randomTensor([2, 3, 5, 7], &rng)  // 5×7 with P = 2: the odd border is dropped
        let out = pe(img)
        XCTAssertEqual(out.shape, [2, 6, 5])
        let expected = naiveConv(pe, img)
        for i in 0..<out.count { XCTAssertEqual(Double(out.data[i]), expected[i], accuracy: 1e-5) }
        XCTAssertEqual(pe.namedParameters.map(\.name), ["proj.weight", "proj.bias"])
        XCTAssertEqual(pe.weight.shape, [5, 3, 2, 2])
    }

    func testPatchEmbedGradientMatchesFiniteDifferences() {
        var rng = RandomGenerator(seed: 62)
        let pe = PatchEmbed(patchSize: 2, inChannels: 3, embedDim: 4)
        randomize(pe, &rng)
        checkLayer(LayerUnderTest(module: pe, input: randomTensor([2, 3, 4, 5], &rng),
                                  forward: { pe($0) },
                                  backward: { pe.backward(dOutput: $0, dImage: $2) },
                                  backwardInput: { pe.backwardInput(dOutput: $0, dImage: $2) }))
    }
}
