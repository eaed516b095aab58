import ArgumentParser
import Core
import Data
import Distributed
import Evaluation
import Foundation
import ImageIO
import RunIO
import Training
import Visualization

/// `causal-tune predict --config FILE --checkpoint CKPT --out DIR [--save trainid,labelid,color,overlay]
///                     [--scale WxH|none] [--keep-going] [--set key=value ...] INPUT...`
///
/// Segments images without ground truth, exactly as evaluation does: keep-ratio resize to
/// the scale, the same sliding window, logits back to the original size, argmax
/// (`Evaluator.predict`, the function `evaluate` calls — so a val image's `trainid` file is
/// `evaluate --save-pred`'s byte for byte).
///
/// Inputs: PNG/JPEG files, folders (searched recursively) and glob patterns (quoted, so
/// the shell leaves them alone). Each input's files keep their path relative to it (a
/// folder: below the folder; a glob: below its last folder without wildcards; a file: its
/// name) and every requested kind goes into its own tree:
///
///     OUT/trainid/<rel>/<stem>.png           train ids 0…18 (what `score --pred` reads)
///     OUT/labelid/<rel>/<name>.png           Cityscapes label ids, under the input's own file
///                                            name (X_leftImg8bit.png, X_rgb_anon.png): the
///                                            files the Cityscapes and ACDC servers pair by name
///     OUT/color/<rel>/<stem>_color.png       Cityscapes palette
///     OUT/overlay/<rel>/<stem>_overlay.png   palette at α 0.5 over the image
///
/// `<stem>` drops the Cityscapes-family suffix (`FileStem`). Under mpirun rank r takes
/// the images i ≡ r (mod world) and writes their files itself, each file once, through a
/// temporary name and a rename; rank 0 prints progress and the messages of every rank.
struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Segment your own images (files, folders, globs) with a checkpoint; no ground truth needed.",
        discussion: """
        Writes OUT/trainid/<rel>/<stem>.png (train ids), OUT/labelid/<rel>/<name>.png (Cityscapes label \
        ids under the input's file name — a benchmark-server submission), OUT/color/<rel>/<stem>_color.png \
        and OUT/overlay/<rel>/<stem>_overlay.png, where <rel> is the image's folder relative to its input. \
        The scale defaults to the first val entry's evaluation scale (its `scale` key, else the dataset's: \
        Cityscapes 1024x512, …; none for folder/synthetic). --checkpoint takes our HDF5 checkpoint or a \
        Rein / mmseg .pth. An unreadable image stops the run with one line naming it; with --keep-going \
        it is skipped and counted.
        """
    )

    @Option(help: "Experiment config (YAML): the model, and the default scale.") var config: String
    @Option(help: "Checkpoint: our HDF5 file or a Rein / mmseg .pth.") var checkpoint: String
    @Option(help: "Output folder.") var out: String
    @Option(help: ArgumentHelp("Comma-separated outputs: trainid, labelid, color, overlay.", valueName: "kinds"))
    var save: String = "trainid,color"
    @Option(help: ArgumentHelp("Test-time keep-ratio resize, WxH (e.g. 2048x1024) or none.", valueName: "WxH"))
    var scale: String?
    @Flag(help: "Skip unreadable images (counted at the end) instead of stopping.") var keepGoing = false
    @Option(name: .customLong("set"), help: "Override a config key: key.path=value (repeat --set for several).")
    var overrides: [String] = []
    @Argument(help: "Images (PNG/JPEG), folders (recursive) or quoted glob patterns.") var inputs: [String] = []

    func run() throws {
        let comm = Communicator.make()
        comm.run {
            let kinds = try PredictionOutput.parseKinds(save)
            guard !inputs.isEmpty else { throw CausalTuneError("predict: no INPUT given (image files, folders or globs)") }
            let cfg = try ExperimentConfig.load(path: config, overrides: overrides)
            try HDF5Preflight.check(.checkpoint(checkpoint), .weights(of: cfg), comm: comm)
            let testScale: (width: Int, height: Int)?
            if let scale {
                testScale = try TestScale.parse(scale, what: "--scale").evaluatorScale
            } else if let v = cfg.data.val.first {
                testScale = v.scale.map { $0.evaluatorScale }
                    ?? DatasetKind(rawValue: v.dataset.rawValue).flatMap { Dataset.evalScale(of: $0) }
            } else {
                testScale = nil
            }
            let images = try PredictInputs.expand(inputs)
            let output = PredictionOutput(directory: out, kinds: kinds)
            try output.checkDistinct(images)
            // Every rank waits until rank 0 has made the folders (and learns if it failed).
            var prepared: Error? = nil
            if comm.isRoot { do { try output.prepare(images) } catch { prepared = error } }
            if comm.any(prepared != nil) {
                if let prepared { throw prepared }
                return
            }

            Trainer.configureThreads(comm)
            let log = comm.isRoot ? RunLog.console() : RunLog.silent()
            RunLog.current = log
            let network = try SegmentationNetwork(config: cfg, seed: UInt64(cfg.train.seed))
            let parameters = ParameterSet(network.trainableParameters)
            let loaded = try ReinCheckpoint.loadAny(checkpoint, into: parameters, signature: network.signature,
                                                    method: cfg.model.peft.method.rawValue, log: log)
            let window = Trainer.slidingWindow(for: network)
            let scaleText = testScale.map { "\($0.width)x\($0.height)" } ?? "original size"
            log.info("predict: \(images.count) image(s) with \(checkpoint) (\(loaded)), scale \(scaleText), → \(out) [\(kinds.map(\.rawValue).joined(separator: ","))]")

            let world = comm.size, rank = comm.rank
            let progress = comm.isRoot ? RunIO.Progress(label: "predict", total: images.count, unit: "img") : nil
            progress?.update(to: 0)   // the rate counts from here
            var skipped = 0, written = 0
            var fatal: String? = nil
            for round in 0..<((images.count + world - 1) / world) {
                let i = round * world + rank
                var message = ""
                var failed = false
                if i < images.count {
                    let item = images[i]
                    do {
                        let image = try ImageIO.readRGB(item.path)
                        let pred = try Evaluator.predict(image, scale: testScale, numClasses: network.head.numClasses,
                                                         window: window, model: { try network.logits(window: $0) })
                        try output.write(item, image: image, prediction: pred)
                        written += 1
                    } catch let e as CausalTuneError {
                        message = e.message; failed = true
                    } catch {
                        message = "\(item.path): \(error)"; failed = true
                    }
                    if failed && keepGoing { skipped += 1; message = "skipped: " + message }
                }
                // Rank 0 prints every rank's message of this round.
                for r in 0..<world {
                    let m = comm.broadcast(r == rank ? message : "", root: r)
                    if comm.isRoot && !m.isEmpty {
                        if keepGoing { FileHandle.standardError.write(Data((m + "\n").utf8)) } else if fatal == nil { fatal = m }
                    }
                }
                if comm.any(failed && !keepGoing) {
                    if comm.isRoot { throw CausalTuneError(fatal ?? "predict failed on another rank") }
                    return
                }
                progress?.update(to: min(images.count, (round + 1) * world))
            }
            let totalSkipped = Int(comm.allReduceSum(Int64(skipped)))
            let totalWritten = Int(comm.allReduceSum(Int64(written)))
            progress?.finish()
            if comm.isRoot {
                let skippedText = totalSkipped > 0 ? ", \(totalSkipped) unreadable image(s) skipped" : ""
                print("predict: \(totalWritten) image(s) written under \(out)\(skippedText)")
            }
        }
    }
}

/// One image to segment: its path and where its outputs go (folder relative to the output
/// tree, file name).
struct PredictItem: Equatable {
    let path: String
    let relativeDirectory: String
    let fileName: String
}

enum PredictInputs {
    static let extensions = ["png", "jpg", "jpeg"]

    static func isImage(_ path: String) -> Bool {
        extensions.contains((path as NSString).pathExtension.lowercased())
    }

    /// Expands files, folders (recursive, sorted) and glob patterns into images.
    static func expand(_ inputs: [String]) throws -> [PredictItem] {
        var out: [PredictItem] = []
        let fm = FileManager.default
        for input in inputs {
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: input, isDirectory: &isDir) {
                if isDir.boolValue {
                    let found = files(under: input)
                    guard !found.isEmpty else { throw CausalTuneError("\(input): no PNG or JPEG images in this folder") }
                    out += found.map { item(path: input + "/" + $0, relativeTo: input) }
                } else {
                    out.append(item(path: input, relativeTo: (input as NSString).deletingLastPathComponent))
                }
            } else if input.contains(where: { "*?[".contains($0) }) {
                let matches = glob(input)
                guard !matches.isEmpty else { throw CausalTuneError("\(input): the pattern matches no file") }
                let base = globBase(input)
                var any = false
                for m in matches {
                    var d: ObjCBool = false
                    guard fm.fileExists(atPath: m, isDirectory: &d) else { continue }
                    if d.boolValue {
                        out += files(under: m).map { item(path: m + "/" + $0, relativeTo: base) }
                        any = true
                    } else if isImage(m) {
                        out.append(item(path: m, relativeTo: base)); any = true
                    }
                }
                guard any else { throw CausalTuneError("\(input): the pattern matches no PNG or JPEG image") }
            } else {
                throw CausalTuneError("\(input): no such file or folder")
            }
        }
        return out
    }

    /// Image files below `dir`, as paths relative to it, sorted.
    static func files(under dir: String) -> [String] {
        guard let e = FileManager.default.enumerator(atPath: dir) else { return [] }
        var out: [String] = []
        while let rel = e.nextObject() as? String {
            if isImage(rel) { out.append(rel) }
        }
        return out.sorted()
    }

    static func item(path: String, relativeTo base: String) -> PredictItem {
        let std = { (p: String) in URL(fileURLWithPath: p).standardizedFileURL.path }
        let full = std(path), root = std(base.isEmpty ? "." : base)
        var rel = (full as NSString).deletingLastPathComponent
        if rel == root { rel = "" } else if rel.hasPrefix(root + "/") { rel = String(rel.dropFirst(root.count + 1)) } else if root == "/" { rel = String(rel.dropFirst()) } else { rel = "" }
        return PredictItem(path: path, relativeDirectory: rel, fileName: (full as NSString).lastPathComponent)
    }

    /// Matches of a glob pattern (sorted).
    static func glob(_ pattern: String) -> [String] {
        var g = glob_t()
        defer { globfree(&g) }
        guard Foundation.glob(pattern, 0, nil, &g) == 0 else { return [] }
        var out: [String] = []
        for i in 0..<Int(g.gl_pathc) {
            if let p = g.gl_pathv[i] { out.append(String(cString: p)) }
        }
        return out.sorted()
    }

    /// The folder part of a pattern before its first wildcard component.
    static func globBase(_ pattern: String) -> String {
        var parts: [Substring] = []
        for c in pattern.split(separator: "/", omittingEmptySubsequences: false).dropLast() {
            if c.contains(where: { "*?[".contains($0) }) { break }
            parts.append(c)
        }
        let base = parts.joined(separator: "/")
        return base.isEmpty ? (pattern.hasPrefix("/") ? "/" : ".") : base
    }
}

/// The files `predict` writes for one image.
struct PredictionOutput {
    enum Kind: String, CaseIterable { case trainid, labelid, color, overlay }

    let directory: String
    let kinds: [Kind]

    static func parseKinds(_ text: String) throws -> [Kind] {
        var out: [Kind] = []
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) where !part.isEmpty {
            guard let k = Kind(rawValue: part) else {
                throw CausalTuneError("--save: '\(part)' is not one of \(Kind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if !out.contains(k) { out.append(k) }
        }
        guard !out.isEmpty else { throw CausalTuneError("--save: no output kind given (trainid, labelid, color, overlay)") }
        return out
    }

    func path(_ kind: Kind, _ item: PredictItem) -> String {
        let stem = FileStem.of(item.fileName)
        let name: String
        switch kind {
        case .trainid: name = stem + ".png"
        case .labelid: name = (item.fileName as NSString).deletingPathExtension + ".png"
        case .color: name = stem + "_color.png"
        case .overlay: name = stem + "_overlay.png"
        }
        var dir = (directory as NSString).appendingPathComponent(kind.rawValue)
        if !item.relativeDirectory.isEmpty { dir = (dir as NSString).appendingPathComponent(item.relativeDirectory) }
        return (dir as NSString).appendingPathComponent(name)
    }

    /// Two inputs that would write the same file (e.g. a.png and a.jpg side by side) are an error.
    func checkDistinct(_ items: [PredictItem]) throws {
        guard let kind = kinds.first else { return }
        var seen: [String: String] = [:]
        for k in [kind] + (kinds.contains(.labelid) && kind != .labelid ? [.labelid] : []) {
            seen = [:]
            for it in items {
                let p = path(k, it)
                if let other = seen[p] {
                    throw CausalTuneError("\(it.path): its output \(p) would overwrite that of \(other) (same stem in one folder)")
                }
                seen[p] = it.path
            }
        }
    }

    /// Creates every output folder (rank 0, before any rank writes).
    func prepare(_ items: [PredictItem]) throws {
        var dirs = Set<String>()
        for it in items { for k in kinds { dirs.insert((path(k, it) as NSString).deletingLastPathComponent) } }
        for d in dirs.sorted() {
            do { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) } catch {
                throw CausalTuneError("\(d): cannot create the output folder (--out)")
            }
        }
    }

    /// Writes the requested files of one image, each through a temporary name and a rename.
    func write(_ item: PredictItem, image: RGBImage, prediction: LabelMap) throws {
        for k in kinds {
            let p = path(k, item)
            let tmp = ((p as NSString).deletingLastPathComponent as NSString)
                .appendingPathComponent(".\((p as NSString).lastPathComponent).tmp-\(getpid())")
            do {
                switch k {
                case .trainid: try ImageIO.writePNG(prediction, to: tmp)
                case .labelid:
                    var ids = prediction
                    let table = Cityscapes.trainIdToLabelId
                    for j in 0..<ids.labels.count { let v = Int(ids.labels[j]); ids.labels[j] = v < table.count ? table[v] : 0 }
                    try ImageIO.writePNG(ids, to: tmp)
                case .color: try SegmentationPicture.colorize(prediction).writePNG(to: tmp)
                case .overlay: try SegmentationPicture.overlay(image, prediction, alpha: 0.5).writePNG(to: tmp)
                }
                try AtomicFile.syncAndRename(tmp, to: p)
            } catch {
                unlink(tmp)
                throw error
            }
        }
    }
}
