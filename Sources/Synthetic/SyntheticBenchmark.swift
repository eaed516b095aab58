/// `causal-tune synth`: writes the synthetic benchmark (reference §Synthetic benchmark) to disk.
///
///   DIR/<domain>/images/<split>/<name>.png   RGB, domain ∈ source fog night rain snow
///   DIR/<domain>/labels/<split>/<name>.png   8-bit train ids (0…18, 255 ignore), the same
///                                            file content in every domain
///   DIR/README.txt                           what this is and how it was made
/// `<name>` is `<split>_<index, 5 digits>`. Scene i of split s is generated from
/// `RandomGenerator(seed: mix(seed, s, i))`, so the output depends only on (seed, size,
/// split, index): more images extend a set without changing the first ones, and the
/// work is split across cores without changing any pixel.
import Core
import Data
import Foundation
import ImageIO
import Numerics

public struct SyntheticBenchmark: Sendable {
    public var width: Int
    public var height: Int
    public var seed: UInt64
    /// Default size: 256×128, large enough for 18×9 patches of 14 px (a 252×126 input of
    /// a small ViT) and small enough that a CPU debug run trains in minutes.
    public static let defaultWidth = 256, defaultHeight = 128

    public init(width: Int = SyntheticBenchmark.defaultWidth, height: Int = SyntheticBenchmark.defaultHeight, seed: UInt64 = 0) {
        self.width = width; self.height = height; self.seed = seed
    }

    public func sceneSeed(split: String, index: Int) -> UInt64 {
        var splitCode: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a of the split name (stable across runs)
        for b in split.utf8 { splitCode = (splitCode ^ UInt64(b)) &* 0x100_0000_01B3 }
        return RandomGenerator.mix(RandomGenerator.mix(seed, splitCode), UInt64(index))
    }

    /// Renders scene `index` of `split`: the labels and the image of every domain (RGB8).
    public func render(split: String, index: Int) -> (labels: LabelMap, images: [SyntheticDomain: RGBImage], depth: [Float]) {
        let s0 = sceneSeed(split: split, index: index)
        var renderer = SceneRenderer(width: width, height: height, seed: s0)
        let scene = renderer.render()
        var images: [SyntheticDomain: RGBImage] = [:]
        for (k, d) in SyntheticDomain.allCases.enumerated() {
            let f = Weather.apply(d, to: scene, seed: RandomGenerator.mix(s0, UInt64(100 + k)))
            var img = RGBImage(width: width, height: height)
            img.pixels.withUnsafeMutableBufferPointer { p in
                for i in 0..<f.count {
                    // display gamma-free quantisation with rounding
                    p[i] = UInt8(max(0, min(255, (f[i] * 255).rounded())))
                }
            }
            images[d] = img
        }
        return (LabelMap(width: width, height: height, labels: scene.labels), images, scene.depth)
    }

    public static func name(split: String, index: Int) -> String { String(format: "%@_%05d", split, index) }

    /// Writes `train` + `val` scenes in every domain under `dir`, in parallel.
    public func write(to dir: String, train: Int, val: Int, progress: ((Int, Int) -> Void)? = nil) throws {
        guard width >= 32, height >= 16, width <= 8192, height <= 8192 else {
            throw CausalTuneError("--size: \(width)x\(height) is outside 32x16 … 8192x8192")
        }
        guard train >= 0, val >= 0 else { throw CausalTuneError("--train/--val must be ≥ 0") }
        let fm = FileManager.default
        for d in SyntheticDomain.allCases { for part in ["images", "labels"] { for split in ["train", "val"] {
            let p = "\(dir)/\(d.rawValue)/\(part)/\(split)"
            do { try fm.createDirectory(atPath: p, withIntermediateDirectories: true) } catch {
                throw CausalTuneError("\(p): cannot create directory: \(error.localizedDescription)")
            }
        } } }
        let jobs: [(String, Int)] = (0..<train).map { ("train", $0) } + (0..<val).map { ("val", $0) }
        let lock = NSLock()
        var firstError: Error? = nil
        var done = 0
        Parallel.forEach(jobs.count) { range in
            for j in range {
                let (split, i) = jobs[j]
                let r = render(split: split, index: i)
                let name = SyntheticBenchmark.name(split: split, index: i)
                do {
                    for d in SyntheticDomain.allCases {
                        try ImageIO.writePNG(r.images[d]!, to: "\(dir)/\(d.rawValue)/images/\(split)/\(name).png")
                        try ImageIO.writePNG(r.labels, to: "\(dir)/\(d.rawValue)/labels/\(split)/\(name).png")
                    }
                } catch {
                    lock.lock(); if firstError == nil { firstError = error }; lock.unlock()
                    return
                }
                lock.lock(); done += 1; let k = done; lock.unlock()
                progress?(k, jobs.count)
            }
        }
        if let firstError { throw firstError }
        let readme = readmeText(train: train, val: val)
        do { try readme.write(toFile: dir + "/README.txt", atomically: true, encoding: .utf8) } catch {
            throw CausalTuneError("\(dir)/README.txt: cannot write: \(error.localizedDescription)")
        }
    }

    public func readmeText(train: Int, val: Int) -> String {
        """
        causal-tune synthetic street-scene benchmark
        =============================================
        Generated by `causal-tune synth --train \(train) --val \(val) --size \(width)x\(height) --seed \(seed)`.
        Deterministic: the same command writes the same bytes.

        Layout
          <domain>/images/<split>/<split>_NNNNN.png   RGB \(width)x\(height)
          <domain>/labels/<split>/<split>_NNNNN.png   8-bit Cityscapes train ids (0..18, 255 = ignore)
          domains: source (clean: the training domain), fog, night, rain, snow (unseen targets)
          splits:  train (\(train) scenes), val (\(val) scenes)
        A scene has the same label map in every domain: weather changes appearance, not layout.

        Scenes
          A pinhole camera 1.5 m above a straight street (random focal length, horizon, road
          width and offset, sidewalks, grass verges), building facades in segments along the
          street with window grids and doors, low walls and fences in gaps, poles carrying
          traffic signs, traffic lights or street lamps, trees, cars and buses, pedestrians,
          cyclists (rider + bicycle), sky with clouds. Colours and textures vary per image.
          Classes that occur: road, sidewalk, building, wall, fence, pole, traffic light,
          traffic sign, vegetation, terrain, sky, person, rider, car, bus, bicycle.
          A depth map (metres) follows from the geometry and drives the weather.

        Domains
          fog:   Koschmieder I = J t + A (1 - t), t = exp(-beta depth), beta 0.025..0.07 /m
          night: exposure 0.08..0.18 with a colour cast, light from street lamps and car lights,
                 lit windows, glow around sources, Gaussian + shot sensor noise
          rain:  vertical blur, lower contrast, darker/bluer, wet road reflections (puddles),
                 light haze, slanted streaks
          snow:  whitened road/sidewalk/terrain and foliage/roof tops, brighter, white haze,
                 snowflakes

        Use: `dataset: synthetic, root: <this folder>, domain: source|fog|night|rain|snow`.
        """
    }
}
