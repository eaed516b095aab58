import XCTest
import Numerics
import Layers

final class ConvGroupNormTests: XCTestCase {
    /// Direct convolution with zero padding, in Double.
    func naiveConv(_ conv: Conv2d, _ x: Tensor) -> [Double] {
        let (B, C, H, W) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (OC, k) = (conv.outputChannels, conv.kernelSize), p = (k - 1) / 2
        var y = [Double](repeating: 0, count: B * OC * H * W)
        for b in 0..<B { for o in 0..<OC { for i in 0..<H { for j in 0..<W {
            var s = Double(conv.bias?.value.data[o] ?? 0)
            for c in 0..<C { for u in 0..<k { for v in 0..<k {
                let yy = i + u - p, xx = j + v - p
                if yy >= 0 && yy < H && xx >= 0 && xx < W {
                    s += Double(conv.weight.value[o, c, u, v]) * Double(x[b, c, yy, xx])
                }
            } } }
            y[((b * OC + o) * H + i) * W + j] = s
        } } } }
        return y
    }

    func testConv2dMatchesDirectConvolution() {
        var rng = RandomGenerator(seed: 21)
        for (k, bias) in [(3, true), (1, false), (3, false), (1, true)] {
            let conv = Conv2d(inputChannels: 3, outputChannels: 4, kernelSize: k, bias: bias)
            conv.reset(rng: &rng)
            let x = randomTensor([2, 3, 5, 6], &rng)
            let y = conv(x)
            XCTAssertEqual(y.shape, [2, 4, 5, 6])
            let e = naiveConv(conv, x)
            for i in 0..<y.count { XCTAssertEqual(Double(y.data[i]), e[i], accuracy: 1e-4) }
        }
    }

    func testConv2dGradientsMatchFiniteDifferences() {
        var rng = RandomGenerator(seed: 22)
        for k in [3, 1] {
            let conv = Conv2d(inputChannels: 3, outputChannels: 2, kernelSize: k)
            randomize(conv, &rng)
            checkLayer(LayerUnderTest(module: conv, input: randomTensor([2, 3, 4, 5], &rng),
                                      forward: { conv($0) },
                                      backward: { conv.backward(dOutput: $0, input: $1, dInput: $2) },
                                      backwardInput: { conv.backwardInput(dOutput: $0, input: $1, dInput: $2) }))
        }
    }

    func testGroupNormNormalisesEachGroupAndAppliesAffine() {
        var rng = RandomGenerator(seed: 23)
        let gn = GroupNorm(groups: 2, channels: 4)
        let x = randomTensor([2, 4, 3, 3], &rng, scale: 3)
        let y = gn(x)
        for b in 0..<2 { for g in 0..<2 {
            let vals = (0..<18).map { Double(y.data[b * 36 + g * 18 + $0]) }
            let m = vals.reduce(0, +) / 18
            let v = vals.map { ($0 - m) * ($0 - m) }.reduce(0, +) / 18
            XCTAssertEqual(m, 0, accuracy: 1e-5)
            XCTAssertEqual(v, 1, accuracy: 1e-3)
        } }
        rng.fillNormal(gn.weight.value); rng.fillNormal(gn.bias.value)
        let y2 = gn(x)
        let c = 3, b = 1
        for i in 0..<9 {
            let o = (b * 4 + c) * 9 + i
            XCTAssertEqual(y2.data[o], y.data[o] * gn.weight.value.data[c] + gn.bias.value.data[c], accuracy: 1e-4)
        }
    }

    func testGroupNormGradientsMatchFiniteDifferences() {
        var rng = RandomGenerator(seed: 24)
        let gn = GroupNorm(groups: 2, channels: 6)
        randomize(gn, &rng)
        checkLayer(LayerUnderTest(module: gn, input: randomTensor([2, 6, 3, 4], &rng),
                                  forward: { gn($0) },
                                  backward: { gn.backward(dOutput: $0, input: $1, dInput: $2) },
                                  backwardInput: { gn.backwardInput(dOutput: $0, input: $1, dInput: $2) }))
    }
}
