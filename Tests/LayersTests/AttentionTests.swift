import XCTest
import Foundation
import Numerics
import Layers

final class AttentionTests: XCTestCase {
    /// The textbook computation, one (batch, head) at a time with plain loops in Double.
    func naiveAttention(_ attn: Attention, _ x: Tensor) -> [Double] {
        let (B, T, C) = (x.shape[0], x.shape[1], x.shape[2])
        let NH = attn.heads, D = attn.headDim
        let qkv = attn.qkv(x)
        var y = [Double](repeating: 0, count: B * T * C)
        for b in 0..<B {
            for h in 0..<NH {
                for t in 0..<T {
                    var scores = [Double](repeating: 0, count: T)
                    for u in 0..<T {
                        var s = 0.0
                        for d in 0..<D { s += Double(qkv[b, t, h * D + d]) * Double(qkv[b, u, C + h * D + d]) }
                        scores[u] = s / Double(D).squareRoot()
                    }
                    let m = scores.max()!
                    let e = scores.map { exp($0 - m) }
                    let z = e.reduce(0, +)
                    for d in 0..<D {
                        var s = 0.0
                        for u in 0..<T { s += e[u] / z * Double(qkv[b, u, 2 * C + h * D + d]) }
                        y[(b * T + t) * C + h * D + d] = s
                    }
                }
            }
        }
        var out = [Double](repeating: 0, count: B * T * C)
        for n in 0..<(B * T) {
            for o in 0..<C {
                var s = Double(attn.proj.bias!.value.data[o])
                for c in 0..<C { s += y[n * C + c] * Double(attn.proj.weight.value[o, c]) }
                out[n * C + o] = s
            }
        }
        return out
    }

    func testAttentionForwardMatchesNaivePerHeadLoop() {
        var rng = RandomGenerator(seed: 9)
        let attn = Attention(channels: 8, heads: 2)
        randomize(attn, &rng)
        let x = randomTensor([2, 5, 8], &rng)
        let y = attn(x)
        let expected = naiveAttention(attn, x)
        for i in 0..<y.count { XCTAssertEqual(Double(y.data[i]), expected[i], accuracy: 1e-4) }
        XCTAssertEqual(attn.namedParameters.map(\.name), ["qkv.weight", "qkv.bias", "proj.weight", "proj.bias"])
        XCTAssertEqual(attn.qkv.weight.shape, [24, 8])
        // every probability row sums to one
        let a = attn.attentionProbabilities
        XCTAssertEqual(a.shape, [2, 2, 5, 5])
        for row in 0..<(a.count / 5) {
            XCTAssertEqual((0..<5).reduce(Float(0)) { $0 + a.data[row * 5 + $1] }, 1, accuracy: 1e-5)
        }
    }

    func testAttentionForwardIsTheSameWithParallelHeads() {
        // Single-threaded BLAS spreads (batch, head) pairs over workers; the result must not change.
        var rng = RandomGenerator(seed: 10)
        let attn = Attention(channels: 12, heads: 3)
        randomize(attn, &rng)
        let x = randomTensor([2, 7, 12], &rng)
        let savedParallel = Parallel.threads, savedBLAS = BLAS.threads
        defer { Parallel.threads = savedParallel; BLAS.setThreads(savedBLAS) }
        BLAS.setThreads(1)
        Parallel.threads = 1
        let serial = attn(x)
        Parallel.threads = 4
        let parallel = attn(x)
        XCTAssertLessThanOrEqual(maxAbsDiff(serial, parallel), 1e-6)
    }

    func testAttentionGradientMatchesFiniteDifferences() {
        var rng = RandomGenerator(seed: 11)
        let attn = Attention(channels: 6, heads: 2)
        randomize(attn, &rng)
        checkLayer(LayerUnderTest(module: attn, input: randomTensor([2, 4, 6], &rng),
                                  forward: { attn($0) },
                                  backward: { attn.backward(dOutput: $0, input: $1, dInput: $2) },
                                  backwardInput: { attn.backwardInput(dOutput: $0, input: $1, dInput: $2) }))
    }

    func testAttentionGradientMatchesFiniteDifferencesWithParallelHeads() {
        var rng = RandomGenerator(seed: 12)
        let attn = Attention(channels: 8, heads: 4)
        randomize(attn, &rng)
        let savedParallel = Parallel.threads, savedBLAS = BLAS.threads
        defer { Parallel.threads = savedParallel; BLAS.setThreads(savedBLAS) }
        BLAS.setThreads(1)
        Parallel.threads = 3
        checkLayer(LayerUnderTest(module: attn, input: randomTensor([2, 3, 8], &rng),
                                  forward: { attn($0) },
                                  backward: { attn.backward(dOutput: $0, input: $1, dInput: $2) },
                                  backwardInput: { attn.backwardInput(dOutput: $0, input: $1, dInput: $2) }))
    }

    func testAttentionRecomputingProbabilitiesGivesTheSameOutputAndGradients() {
        var rng = RandomGenerator(seed: 13)
        let attn = Attention(channels: 8, heads: 2)
        randomize(attn, &rng)
        let x = randomTensor([2, 5, 8], &rng)
        let stored = attn(x)
        attn.storesProbabilities = false
        XCTAssertLessThanOrEqual(maxAbsDiff(attn(x), stored), 1e-6)
        XCTAssertEqual(attn.attentionProbabilities.count, 0)
        checkLayer(LayerUnderTest(module: attn, input: x,
                                  forward: { attn($0) },
                                  backward: { attn.backward(dOutput: $0, input: $1, dInput: $2) },
                                  backwardInput: { attn.backwardInput(dOutput: $0, input: $1, dInput: $2) }))
        let savedParallel = Parallel.threads, savedBLAS = BLAS.threads
        defer { Parallel.threads = savedParallel; BLAS.setThreads(savedBLAS) }
        BLAS.setThreads(1)
        Parallel.threads = 3
        checkLayer(LayerUnderTest(module: attn, input: x,
                                  forward: { attn($0) },
                                  backward: { attn.backward(dOutput: $0, input: $1, dInput: $2) },
                                  backwardInput: { attn.backwardInput(dOutput: $0, input: $1, dInput: $2) }))
    }
}
