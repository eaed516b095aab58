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

    // MARK: query blocks (AttentionPartition)

    func testAttentionPartitionRule() {
        // The default width, and pairs enough for the width, keep one block: the old path.
        XCTAssertEqual(AttentionPartition(pairs: 1, tokens: 1025, width: ProductTiling.defaultWidth).blocks, 1)
        XCTAssertEqual(AttentionPartition(pairs: 1, tokens: 1025, width: 2).blocks, 1)
        XCTAssertEqual(AttentionPartition(pairs: 16, tokens: 1025, width: 16).blocks, 1)
        XCTAssertEqual(AttentionPartition(pairs: 64, tokens: 1025, width: 64).blocks, 1)
        XCTAssertEqual(AttentionPartition(pairs: 1, tokens: 1025, width: 4).rowsPerBlock, 1025)
        // ViT-L/16 512², batch 1, W = 64: 16 pairs × 4 blocks of ≤ 264 rows.
        let vitL = AttentionPartition(pairs: 16, tokens: 1025, width: 64)
        XCTAssertEqual(vitL.blocks, 4)
        XCTAssertEqual(vitL.rowsPerBlock, 264)
        XCTAssertEqual(vitL.rows(3, tokens: 1025), 792..<1025)
        // ⌈W / pairs⌉ blocks, capped at ⌊T / 64⌋; tiny T stays whole.
        XCTAssertEqual(AttentionPartition(pairs: 16, tokens: 1025, width: 32).blocks, 2)
        XCTAssertEqual(AttentionPartition(pairs: 2, tokens: 100, width: 64).blocks, 1)
        XCTAssertEqual(AttentionPartition(pairs: 2, tokens: 127, width: 1024).blocks, 1)
        let small = AttentionPartition(pairs: 2, tokens: 200, width: 64)
        XCTAssertEqual(small.blocks, 3)
        XCTAssertEqual(small.rowsPerBlock, 72)
        // Rounding the rows up to 8 drops blocks that would be empty.
        let wide = AttentionPartition(pairs: 1, tokens: 1025, width: 1024)
        XCTAssertEqual(wide.rowsPerBlock, 72)
        XCTAssertEqual(wide.blocks, 15)
        for (pairs, tokens, width) in [(16, 1025, 64), (1, 1025, 1024), (2, 200, 64), (3, 197, 8), (5, 130, 512), (2, 64, 64)] {
            let p = AttentionPartition(pairs: pairs, tokens: tokens, width: width)
            var next = 0
            for i in 0..<p.blocks {
                let rows = p.rows(i, tokens: tokens)
                XCTAssertEqual(rows.lowerBound, next)
                XCTAssertFalse(rows.isEmpty, "\(pairs) pairs, T \(tokens), W \(width): block \(i) empty")
                next = rows.upperBound
            }
            XCTAssertEqual(next, tokens, "\(pairs) pairs, T \(tokens), W \(width): blocks do not cover the rows")
            XCTAssertEqual(p.blocks == 1 || p.rowsPerBlock % 8 == 0, true)
        }
    }

    /// Output, input gradient and parameter gradients of one forward and full backward.
    private func attentionRun(_ attn: Attention, _ x: Tensor, _ r: Tensor) -> [Tensor] {
        attn.setRequiresGrad(true)
        attn.zeroGrad()
        let out = attn(x).clone()
        let dx = Tensor(zeros: x.shape)
        attn.backward(dOutput: r, input: x, dInput: dx)
        return [out, dx] + attn.namedParameters.map { $0.parameter.grad!.clone() }
    }

    /// 2 images × 2 heads of 197 tokens (14 × 14 patches and a class token), D = 8: at
    /// W = 64 three query blocks per pair (72, 72 and 53 rows).
    private func blockedAttention(rotary: Bool, seed: UInt64) -> (Attention, Tensor, Tensor) {
        var rng = RandomGenerator(seed: seed)
        let attn = Attention(channels: 16, heads: 2)
        randomize(attn, &rng)
        if rotary { attn.rotary = RotaryPositionEmbedding(headDim: 8, grid: (14, 14), prefixTokens: 1) }
        let x = randomTensor([2, 197, 16], &rng)
        let r = randomTensor([2, 197, 16], &rng)
        return (attn, x, r)
    }

    func testAttentionQueryBlocksMatchTheWholePairs() {
        XCTAssertEqual(AttentionPartition(pairs: 4, tokens: 197, width: 64).blocks, 3)
        let savedWidth = ProductTiling.width, savedParallel = Parallel.threads, savedBLAS = BLAS.threads
        defer { ProductTiling.width = savedWidth; Parallel.threads = savedParallel; BLAS.setThreads(savedBLAS) }
        BLAS.setThreads(1)
        Parallel.threads = 3
        var worst = 0.0
        for rotary in [false, true] {
            for stores in [true, false] {
                for inArena in [false, true] {
                    let (attn, x, r) = blockedAttention(rotary: rotary, seed: 21)
                    attn.storesProbabilities = stores
                    if inArena { attn.arena = ScratchArena(); attn.cachesInArena = true }
                    ProductTiling.width = ProductTiling.defaultWidth
                    let whole = attentionRun(attn, x, r)
                    ProductTiling.width = 64
                    let blocked = attentionRun(attn, x, r)
                    let names = ["output", "input gradient"] + attn.namedParameters.map(\.name)
                    for (name, (a, b)) in zip(names, zip(whole, blocked)) {
                        let relative = Double(maxAbsDiff(a, b)) / Double(max(maxAbs(a), 1e-12))
                        worst = max(worst, relative)
                        XCTAssertLessThanOrEqual(relative, 1e-5,
                                                 "\(name), rotary \(rotary), stores \(stores), arena \(inArena)")
                    }
                    if stores {
                        XCTAssertEqual(attn.attentionProbabilities.shape, [2, 2, 197, 197])
                    }
                }
            }
        }
        print("attention query blocks vs whole pairs: largest relative difference \(worst)")
    }

    func testAttentionQueryBlocksAreBitIdenticalForAnyThreadCount() {
        let savedWidth = ProductTiling.width, savedParallel = Parallel.threads, savedBLAS = BLAS.threads
        defer { ProductTiling.width = savedWidth; Parallel.threads = savedParallel; BLAS.setThreads(savedBLAS) }
        BLAS.setThreads(1)
        ProductTiling.width = 64
        for stores in [true, false] {
            let (attn, x, r) = blockedAttention(rotary: true, seed: 22)
            attn.storesProbabilities = stores
            Parallel.threads = 1
            let reference = attentionRun(attn, x, r)
            for threads in [3, 8] {
                Parallel.threads = threads
                let got = attentionRun(attn, x, r)
                for (i, (a, b)) in zip(reference, got).enumerated() {
                    XCTAssertTrue(a.array.elementsEqual(b.array) { $0.bitPattern == $1.bitPattern },
                                  "result \(i), stores \(stores): \(threads) threads differ from 1")
                }
            }
        }
    }

    func testAttentionQueryBlocksGradientMatchesFiniteDifferences() {
        let savedWidth = ProductTiling.width, savedParallel = Parallel.threads, savedBLAS = BLAS.threads
        defer { ProductTiling.width = savedWidth; Parallel.threads = savedParallel; BLAS.setThreads(savedBLAS) }
        // One worker: the bits do not depend on the thread count (checked above), and the
        // finite differences run the forward ~1400 times.
        BLAS.setThreads(1)
        Parallel.threads = 1
        ProductTiling.width = 64
        // 1 image × 2 heads of 130 tokens: two query blocks (72 + 58 rows) per pair.
        XCTAssertEqual(AttentionPartition(pairs: 2, tokens: 130, width: 64).blocks, 2)
        for stores in [true, false] {
            var rng = RandomGenerator(seed: 23)
            let attn = Attention(channels: 8, heads: 2)
            randomize(attn, &rng)
            attn.storesProbabilities = stores
            checkLayer(LayerUnderTest(module: attn, input: randomTensor([1, 130, 8], &rng),
                                      forward: { attn($0) },
                                      backward: { attn.backward(dOutput: $0, input: $1, dInput: $2) },
                                      backwardInput: { attn.backwardInput(dOutput: $0, input: $1, dInput: $2) }))
        }
    }
}
