import Data
import Foundation
import ImageIO
import Numerics
import Synthetic
import XCTest

final class PipelineTests: XCTestCase {
    func testRandomCropRespectsCatMaxRatio() {
        // 64×64: class 0 everywhere except a 20×64 strip of class 1 on the right, so only
        // some 24×24 crops are balanced.
        var lab = LabelMap(width: 64, height: 64, fill: 0)
        for y in 0..<64 { for x in 44..<64 { lab[y, x] = 1 } }
        var balancedPlain = 0, balancedRatio = 0
        let trials = 400
        for s in 0..<trials {
            var r1 = RandomGenerator(seed: UInt64(s)), r2 = RandomGenerator(seed: UInt64(s))
            let plain = Transforms.randomCropBox(lab, cropWidth: 24, cropHeight: 24, catMaxRatio: 1, rng: &r1)
            let box = Transforms.randomCropBox(lab, cropWidth: 24, cropHeight: 24, catMaxRatio: 0.75, rng: &r2)
            XCTAssertEqual([box.width, box.height], [24, 24])
            if Transforms.cropIsBalanced(lab, plain, catMaxRatio: 0.75) { balancedPlain += 1 }
            if Transforms.cropIsBalanced(lab, box, catMaxRatio: 0.75) { balancedRatio += 1 }
        }
        let p = Double(balancedPlain) / Double(trials)
        XCTAssertLessThan(p, 0.4, "the layout makes unbalanced crops common")
        // 11 draws: failure rate (1 − p)^11
        XCTAssertGreaterThan(Double(balancedRatio) / Double(trials), 1 - pow(1 - p, 11) - 0.05)
    }

    func testCatMaxRatioIgnoresThe255Pixels() {
        // Half ignore, the rest class 0 with one pixel of class 1: never balanced, because the
        // ratio is over the labelled pixels only.
        var lab = LabelMap(width: 8, height: 8, fill: 255)
        for i in 32..<64 { lab.labels[i] = 0 }
        lab.labels[40] = 1
        let all = Transforms.Box(x: 0, y: 0, width: 8, height: 8)
        XCTAssertFalse(Transforms.cropIsBalanced(lab, all, catMaxRatio: 0.75))
        for i in 32..<48 { lab.labels[i] = 2 }  // 16 of 2, 15 of 0, 1 of 1 → max 0.5 < 0.75
        XCTAssertTrue(Transforms.cropIsBalanced(lab, all, catMaxRatio: 0.75))
        XCTAssertFalse(Transforms.cropIsBalanced(LabelMap(width: 4, height: 4, fill: 3), Transforms.Box(x: 0, y: 0, width: 4, height: 4), catMaxRatio: 0.75), "one class is never balanced")
    }

    func testFlipMovesLabelsWithPixels() {
        var img = RGBImage(width: 7, height: 3), lab = LabelMap(width: 7, height: 3)
        for y in 0..<3 { for x in 0..<7 { lab[y, x] = UInt8(y * 7 + x); img[y, x, 0] = UInt8(10 * (y * 7 + x)); img[y, x, 2] = UInt8(x) } }
        var fi = img, fl = lab
        Transforms.flip(&fi, &fl)
        for y in 0..<3 { for x in 0..<7 {
            XCTAssertEqual(fl[y, x], lab[y, 6 - x])
            XCTAssertEqual(fi[y, x, 0], 10 * fl[y, x], "pixel and label move together")
            XCTAssertEqual(fi[y, x, 2], UInt8(6 - x))
        } }
        // through the whole pipeline (PMD keeps a pixel's label next to it): the crop of an
        // image whose columns carry their label keeps the pairing under flips.
        var big = RGBImage(width: 40, height: 20), bl = LabelMap(width: 40, height: 20)
        for y in 0..<20 { for x in 0..<40 { bl[y, x] = UInt8(x % 19); big[y, x, 1] = UInt8(x * 6) } }
        var flips = 0
        for s in 0..<40 {
            var rng = RandomGenerator(seed: UInt64(s))
            let o = PipelineOptions(cropWidth: 16, cropHeight: 8, catMaxRatio: 1)
            let (_, l) = TrainPipeline.apply(image: big, labels: bl, options: o, rng: &rng)
            // labels of a crop are consecutive columns, increasing or (flipped) decreasing
            let a = Int(l[0, 0]), b = Int(l[0, 1])
            XCTAssertEqual(abs(a - b) % 18 == 1 || abs(a - b) == 18, true)
            if (b - a + 19) % 19 == 18 { flips += 1 }
        }
        XCTAssertGreaterThan(flips, 8); XCTAssertLessThan(flips, 32)
    }

    func testPhotoMetricDistortionStaysInRangeWithoutWrapping() {
        for s in 0..<60 {
            for fill: UInt8 in [0, 255, 128] {
                var img = RGBImage(width: 5, height: 4, fill: fill)
                var rng = RandomGenerator(seed: UInt64(s))
                Transforms.photoMetricDistortion(&img, rng: &rng)
                // a grey image stays a uniform grey: clipping, never wrap-around
                XCTAssertTrue(img.pixels.allSatisfy { $0 == img.pixels[0] }, "seed \(s) fill \(fill)")
                if fill == 255 { XCTAssertGreaterThanOrEqual(img.pixels[0], 127, "white can only be darkened by contrast ≥ 0.5") }
                if fill == 0 { XCTAssertLessThanOrEqual(img.pixels[0], 32) }
            }
        }
        // colours: changes happen, and over many seeds values hit both ends without overflow traps
        var rng0 = RandomGenerator(seed: 9)
        var img = RGBImage(width: 32, height: 32)
        for i in 0..<img.pixels.count { img.pixels[i] = UInt8(rng0.integer(below: 256)) }
        var changed = 0
        for s in 0..<20 {
            var x = img, rng = RandomGenerator(seed: UInt64(s))
            Transforms.photoMetricDistortion(&x, rng: &rng)
            if x != img { changed += 1 }
        }
        XCTAssertGreaterThan(changed, 15)
    }

    func testLabelResizeIsNearestNeighbour() {
        var lab = LabelMap(width: 5, height: 3)
        for i in 0..<15 { lab.labels[i] = UInt8([0, 7, 13, 255, 2][i % 5]) }
        let up = Transforms.resize(lab, width: 13, height: 7)
        XCTAssertTrue(Set(up.labels).isSubset(of: Set(lab.labels)), "no blended ids")
        // OpenCV INTER_NEAREST: src = floor(d · n/m)
        for y in 0..<7 { for x in 0..<13 {
            XCTAssertEqual(up[y, x], lab[min(y * 3 / 7, 2), min(x * 5 / 13, 4)])
        } }
        let img = Transforms.resize(RGBImage(width: 5, height: 3, fill: 77), width: 9, height: 4)
        XCTAssertTrue(img.pixels.allSatisfy { $0 == 77 }, "bilinear keeps a constant image")
        XCTAssertEqual(Transforms.keepRatioSize(width: 2048, height: 1024, scale: (1024, 512)).width, 1024)
        XCTAssertEqual(Transforms.keepRatioSize(width: 1920, height: 1080, scale: (1024, 512)).height, 512)
        XCTAssertEqual(Transforms.keepRatioSize(width: 1920, height: 1080, scale: (1024, 512)).width, 910)
    }

    func makeSynthetic() throws -> Dataset {
        let dir = try makeTempDir(self)
        try SyntheticBenchmark(width: 48, height: 24, seed: 2).write(to: dir, train: 5, val: 0)
        return try Dataset(kind: .synthetic, root: dir, split: "train")
    }

    func testShardUnionEqualsSingleProcessBatchForAnyWorldSize() throws {
        let ds = try makeSynthetic()
        let o = PipelineOptions(cropWidth: 24, cropHeight: 16)
        let single = BatchLoader(dataset: ds, options: o, sampler: ShardedSampler(datasetCount: ds.count, batchSize: 4, seed: 5))
        for step in [0, 1, 3] {
            let ref = try single.batch(step: step)
            XCTAssertEqual(ref.images.shape, [4, 3, 16, 24])
            for world in [2, 3, 4] {
                var rows = 0
                for rank in 0..<world {
                    let l = BatchLoader(dataset: ds, options: o,
                                        sampler: ShardedSampler(datasetCount: ds.count, batchSize: 4, seed: 5, rank: rank, worldSize: world))
                    let b = try l.batch(step: step)
                    for (k, j) in b.slots.enumerated() {
                        XCTAssertEqual(b.indices[k], ref.indices[j])
                        XCTAssertEqual(b.images.slice(k).array, ref.images.slice(j).array)
                        let n = 16 * 24
                        XCTAssertEqual(Array(b.labels[(k * n)..<((k + 1) * n)]), Array(ref.labels[(j * n)..<((j + 1) * n)]))
                    }
                    rows += b.slots.count
                }
                XCTAssertEqual(rows, 4)
            }
        }
        // epochs: each index once per epoch (5 images, batch 4 → slots 0..<20 cover 4 epochs)
        let sampler = ShardedSampler(datasetCount: 5, batchSize: 4, seed: 5)
        let seq = (0..<5).flatMap { sampler.assignments(step: $0).map(\.index) }
        for e in 0..<4 { XCTAssertEqual(Set(seq[(e * 5)..<((e + 1) * 5)]), Set(0..<5)) }
        XCTAssertNotEqual(sampler.permutation(epoch: 0), sampler.permutation(epoch: 1))
    }

    func testDroppedLoaderIsFreedWithoutStopAndNextAfterStopThrows() throws {
        let ds = try makeSynthetic()
        let o = PipelineOptions(cropWidth: 24, cropHeight: 16)
        weak var weakLoader: BatchLoader?
        do {
            let l = BatchLoader(dataset: ds, options: o, sampler: ShardedSampler(datasetCount: ds.count, batchSize: 2, seed: 1))
            weakLoader = l
            XCTAssertEqual(try l.next().step, 0)   // the prefetch thread runs
        }
        XCTAssertNil(weakLoader, "the prefetch thread does not keep the loader alive; deinit stops it")
        let l = BatchLoader(dataset: ds, options: o, sampler: ShardedSampler(datasetCount: ds.count, batchSize: 2, seed: 1))
        XCTAssertEqual(try l.next().step, 0)
        l.stop(); l.stop()
        XCTAssertThrowsError(try l.next(), "next() after stop() fails instead of waiting forever")
    }

    func testPrefetchedBatchesEqualDirectOnesAndNoAugmentIsDeterministic() throws {
        let ds = try makeSynthetic()
        let o = PipelineOptions(cropWidth: 24, cropHeight: 16)
        let loader = BatchLoader(dataset: ds, options: o, sampler: ShardedSampler(datasetCount: ds.count, batchSize: 2, seed: 1),
                                 startStep: 2, prefetch: 2)
        for step in 2..<6 {
            let b = try loader.next()
            XCTAssertEqual(b.step, step)
            XCTAssertEqual(b.images.array, try loader.batch(step: step).images.array)
        }
        loader.stop()
        // augment none: centre crop of the resized image, normalised
        let plain = PipelineOptions(cropWidth: 24, cropHeight: 16, augment: false)
        var r1 = RandomGenerator(seed: 1), r2 = RandomGenerator(seed: 2)
        let (img, lab) = try ds.load(0)
        let a = TrainPipeline.apply(image: img, labels: lab, options: plain, rng: &r1)
        let b = TrainPipeline.apply(image: img, labels: lab, options: plain, rng: &r2)
        XCTAssertEqual(a.0, b.0); XCTAssertEqual(a.1, b.1)
        XCTAssertEqual(a.1[0, 0], lab[4, 12])
        let t = Tensor(zeros: [1, 3, 16, 24])
        Transforms.normalize(a.0, into: t, batch: 0)
        XCTAssertEqual(t[0, 1, 0, 0], (Float(a.0[0, 0, 1]) - 116.28) / 57.12, accuracy: 1e-5)
    }
}
