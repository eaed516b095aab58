import Foundation
import Layers
import Numerics
import XCTest

/// The layer pieces EVA02 and CLIP add: QuickGELU in the MLP, SwiGLU's sub-LayerNorm and the
/// rotary position embedding inside attention — each against a direct formula and finite
/// differences.
final class BackboneFamilyLayerTests: XCTestCase {
    func testQuickGELUMLPIsFc1QuickGELUFc2() {
        var rng = RandomGenerator(seed: 51)
        let mlp = MLP(channels: 4, hiddenChannels: 9, activation: .quickGELU)
        randomize(mlp, &rng, scale: 1)
        let x = randomTensor([3, 4], &rng)
        let h = mlp.fc1(x)
        for i in 0..<h.count {
            let v = Double(h.data[i])
            h.data[i] = Float(v / (1 + Foundation.exp(-1.702 * v)))
        }
        XCTAssertLessThan(maxAbsDiff(mlp(x), mlp.fc2(h)), 1e-5)
    }

    func testQuickGELUMLPGradientMatchesFiniteDifferences() {
        var rng = RandomGenerator(seed: 52)
        let mlp = MLP(channels: 5, hiddenChannels: 12, activation: .quickGELU)
        randomize(mlp, &rng)
        checkLayer(LayerUnderTest(module: mlp, input: randomTensor([2, 3, 5], &rng),
                                  forward: { mlp($0) },
                                  backward: { mlp.backward(dOutput: $0, input: $1, dInput: $2) },
                                  backwardInput: { mlp.backwardInput(dOutput: $0, input: $1, dInput: $2) }))
    }

    func testSwiGLUSubNormIsLayerNormBeforeW3() {
        var rng = RandomGenerator(seed: 53)
        let ffn = SwiGLUFFN(channels: 4, hiddenChannels: 6, subNormEps: 1e-6)
        randomize(ffn, &rng)
        let x = randomTensor([2, 4], &rng)
        let x12 = ffn.w12(x)
        let h = Tensor(zeros: [2, 6])
        for r in 0..<2 {
            for j in 0..<6 {
                let a = x12[r, j], b = x12[r, 6 + j]
                h[r, j] = a / (1 + exp(-a)) * b
            }
        }
        XCTAssertLessThan(maxAbsDiff(ffn(x), ffn.w3(ffn.subNorm!(h))), 1e-5)
        XCTAssertEqual(ffn.namedParameters.map(\.name),
                       ["w12.weight", "w12.bias", "ffn_ln.weight", "ffn_ln.bias", "w3.weight", "w3.bias"])
    }

    func testSwiGLUSubNormGradientMatchesFiniteDifferences() {
        var rng = RandomGenerator(seed: 54)
        let ffn = SwiGLUFFN(channels: 5, hiddenChannels: 8, subNormEps: 1e-6)
        randomize(ffn, &rng)
        // A LayerNorm over few units is strongly curved: central differences with a smaller step.
        checkLayer(LayerUnderTest(module: ffn, input: randomTensor([2, 3, 5], &rng),
                                  forward: { ffn($0) },
                                  backward: { ffn.backward(dOutput: $0, input: $1, dInput: $2) },
                                  backwardInput: { ffn.backwardInput(dOutput: $0, input: $1, dInput: $2) }),
                   eps: 2e-3)
    }

    /// The table against the formula: pair j of patch (r, c) turns by r·16/h · ω_j (j < D/4)
    /// or c·16/w · ω_{j−D/4}, prefix tokens and v untouched; the inverse undoes it.
    func testRotaryEmbeddingRotatesInterleavedPairsByRowThenColumn() {
        let D = 8, C = 16, grid = (h: 2, w: 3), prefix = 1, T = prefix + grid.h * grid.w
        let rope = RotaryPositionEmbedding(headDim: D, grid: grid, prefixTokens: prefix)
        var rng = RandomGenerator(seed: 55)
        let qkv = randomTensor([1, T, 3 * C], &rng)
        let original = qkv.clone()
        rope.rotate(qkv, channels: C)
        for t in 0..<T {
            for ch in 0..<(3 * C) {
                let part = ch / C, within = ch % C, d = within % D
                let x = { (k: Int) in Double(original.data[t * 3 * C + part * C + (within / D) * D + k]) }
                var expected = x(d)
                if t >= prefix && part < 2 {
                    let n = t - prefix, r = n / grid.w, c = n % grid.w, j = d / 2, f = D / 4
                    let omega = Foundation.pow(10000.0, -Double(4 * (j % f)) / Double(D))
                    let angle = (j < f ? Double(r) * 16 / Double(grid.h) : Double(c) * 16 / Double(grid.w)) * omega
                    expected = d % 2 == 0 ? x(d) * cos(angle) - x(d + 1) * sin(angle) : x(d) * cos(angle) + x(d - 1) * sin(angle)
                }
                XCTAssertEqual(Double(qkv.data[t * 3 * C + ch]), expected, accuracy: 1e-5, "token \(t) channel \(ch)")
            }
        }
        rope.rotate(qkv, channels: C, inverse: true)
        XCTAssertLessThan(maxAbsDiff(qkv, original), 1e-5)
    }

    func testRotaryAttentionGradientMatchesFiniteDifferences() {
        for storesProbabilities in [true, false] {
            var rng = RandomGenerator(seed: 56)
            let attn = Attention(channels: 8, heads: 2)
            attn.rotary = RotaryPositionEmbedding(headDim: 4, grid: (2, 2), prefixTokens: 1)
            attn.storesProbabilities = storesProbabilities
            randomize(attn, &rng)
            checkLayer(LayerUnderTest(module: attn, input: randomTensor([2, 5, 8], &rng),
                                      forward: { attn($0) },
                                      backward: { attn.backward(dOutput: $0, input: $1, dInput: $2) },
                                      backwardInput: { attn.backwardInput(dOutput: $0, input: $1, dInput: $2) }))
        }
    }
}
