/// Segmentation datasets in their native layouts (reference §Training), as lists of (image, label) pairs.
///
///   cityscapes  ROOT/leftImg8bit/SPLIT/CITY/X_leftImg8bit.png
///               ROOT/gtFine/SPLIT/CITY/X_gtFine_labelTrainIds.png (train ids; preferred) or
///               X_gtFine_labelIds.png (label ids)
///   gta5        ROOT/images/X.png, ROOT/labels/X_labelTrainIds.png (train ids; preferred) or
///               ROOT/labels/X.png (Cityscapes label ids). SPLIT is not used (all images).
///   bdd100k     ROOT/images/10k/SPLIT/X.jpg, ROOT/labels/sem_seg/masks/SPLIT/X.png (train ids)
///   mapillary   ROOT/half/val_img/X.jpg, ROOT/half/val_label/X.png (train ids; the reference
///               tools' Cityscapes-converted half-resolution validation set; SPLIT unused)
///   acdc        ROOT/rgb_anon/COND/SPLIT/SEQ/X_rgb_anon.png,
///               ROOT/gt/COND/SPLIT/SEQ/X_gt_labelTrainIds.png (preferred) or X_gt_labelIds.png;
///               COND = `selection` (fog, night, rain, snow) or all four when nil
///   synthetic   ROOT/DOMAIN/images/SPLIT/X.png, ROOT/DOMAIN/labels/SPLIT/X.png (train ids);
///               DOMAIN = `selection` (source, fog, night, rain, snow), default source
///   folder      ROOT/images/X.{png,jpg,jpeg}, ROOT/labels/X.png (train ids), matched by stem;
///               ROOT/images/SPLIT/… and ROOT/labels/SPLIT/… are used when they exist
/// Every image needs its label and every label its image; a missing folder, an unmatched
/// file or an empty set is one error naming it. Image/label sizes are checked when a
/// sample is loaded. Pairs are sorted by image path.
import Core
import Foundation
import ImageIO
import Logging

public enum DatasetKind: String, CaseIterable, Sendable, Decodable {
    case gta5, cityscapes, bdd100k, mapillary, acdc, synthetic, folder

    /// ACDC's adverse conditions (a dataset's `condition`).
    public static let acdcConditions = ["fog", "night", "rain", "snow"]
}

/// One (image, label) pair and how its label file encodes classes.
public struct Sample: Equatable, Sendable {
    public var image: String
    public var label: String
    public var encoding: LabelEncoding
    public init(image: String, label: String, encoding: LabelEncoding) {
        self.image = image; self.label = label; self.encoding = encoding
    }
    /// The image's stem, used to name saved predictions.
    public var stem: String { FileStem.of(image) }
}

public struct Dataset: Sendable {
    public let kind: DatasetKind
    public let root: String
    public let split: String
    public let selection: String?
    /// Display name (the config's `name`, else the kind plus the selection).
    public var name: String
    public let samples: [Sample]

    public var count: Int { samples.count }

    /// Opens a dataset root. `selection` is the ACDC condition or the synthetic domain.
    public init(kind: DatasetKind, root: String, split: String = "val", selection: String? = nil, name: String? = nil) throws {
        self.kind = kind; self.root = root; self.split = split; self.selection = selection
        self.name = name ?? (selection.map { "\(kind.rawValue)-\($0)" } ?? kind.rawValue)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue else {
            throw CausalTuneError("\(root): \(kind.rawValue) dataset root not found")
        }
        samples = try Dataset.list(kind: kind, root: root, split: split, selection: selection)
        guard !samples.isEmpty else { throw CausalTuneError("\(root): no \(kind.rawValue) images for split '\(split)'") }
    }

    /// Opens by name (`cityscapes`, `gta5`, …), throwing a clear error for an unknown one.
    public init(named kindName: String, root: String, split: String = "val", selection: String? = nil, name: String? = nil) throws {
        guard let k = DatasetKind(rawValue: kindName.lowercased()) else {
            throw CausalTuneError("dataset: unknown dataset '\(kindName)' (known: \(DatasetKind.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        try self.init(kind: k, root: root, split: split, selection: selection, name: name)
    }

    /// Reads sample `i`: the RGB image and its labels as train ids (255 = ignore).
    public func load(_ i: Int) throws -> (image: RGBImage, labels: LabelMap) {
        let s = samples[i]
        let img = try ImageIO.readRGB(s.image)
        var lab = try ImageIO.readLabels(s.label)
        guard img.width == lab.width, img.height == lab.height else {
            throw CausalTuneError("\(s.label): label size \(lab.width)x\(lab.height) differs from image \(s.image) (\(img.width)x\(img.height))")
        }
        LabelValueReport.check(lab, encoding: s.encoding, file: s.label)
        s.encoding.toTrainIds(&lab)
        return (img, lab)
    }

    /// The training resize of the reference configs (`Resize(scale=…)`, exact size):
    /// GTA5 1280×720, Cityscapes 1024×512; `nil` (keep the size) for the others.
    public var trainScale: (width: Int, height: Int)? {
        switch kind {
        case .gta5: return (1280, 720)
        case .cityscapes: return (1024, 512)
        default: return nil
        }
    }

    /// A test-time resize chosen by the user (a val entry's `scale`): replaces `evalScale`;
    /// `.some(nil)` evaluates at the decoded size.
    public var evalScaleOverride: (width: Int, height: Int)?? = nil

    /// The evaluation keep-ratio resize (`Resize(scale=…, keep_ratio=True)`): Cityscapes,
    /// Mapillary and ACDC 1024×512, BDD100K and GTA5 1280×720; `nil` for synthetic and folder.
    public var evalScale: (width: Int, height: Int)? {
        if let o = evalScaleOverride { return o }
        return Dataset.evalScale(of: kind)
    }

    /// The evaluation scale of a dataset kind (what `evalScale` is without an override).
    public static func evalScale(of kind: DatasetKind) -> (width: Int, height: Int)? {
        switch kind {
        case .cityscapes, .mapillary, .acdc: return (1024, 512)
        case .bdd100k, .gta5: return (1280, 720)
        case .synthetic, .folder: return nil
        }
    }

    // MARK: - Layouts

    static func requireDir(_ path: String, _ what: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else {
            throw CausalTuneError("\(path): missing \(what) folder")
        }
    }

    /// Files below `dir` (recursive) whose names end in one of `suffixes`, sorted.
    static func files(under dir: String, suffixes: [String]) -> [String] {
        guard let e = FileManager.default.enumerator(atPath: dir) else { return [] }
        var out: [String] = []
        while let rel = e.nextObject() as? String {
            let lower = rel.lowercased()
            if suffixes.contains(where: { lower.hasSuffix($0.lowercased()) }) { out.append(dir + "/" + rel) }
        }
        return out.sorted()
    }

    /// Pairs images with labels found by `labelFor` (first existing candidate wins).
    static func pair(images: [String], what: String, labelFor: (String) -> [(String, LabelEncoding)]) throws -> [Sample] {
        var out: [Sample] = []
        let fm = FileManager.default
        for img in images {
            let candidates = labelFor(img)
            guard let hit = candidates.first(where: { fm.fileExists(atPath: $0.0) }) else {
                throw CausalTuneError("\(img): no \(what) label (expected \(candidates.map(\.0).joined(separator: " or ")))")
            }
            out.append(Sample(image: img, label: hit.0, encoding: hit.1))
        }
        return out
    }

    /// Labels without an image are an error too (counts must match).
    static func checkNoOrphans(labels: [String], used: [Sample], labelDir: String) throws {
        let usedSet = Set(used.map(\.label))
        let stems = Set(used.map { FileStem.of($0.label) })
        let orphans = labels.filter { !usedSet.contains($0) && !stems.contains(FileStem.of($0)) }
        if let first = orphans.first {
            throw CausalTuneError("\(first): label without an image (\(orphans.count) such files in \(labelDir); image/label counts differ)")
        }
    }

    static func list(kind: DatasetKind, root: String, split: String, selection: String?) throws -> [Sample] {
        let r = root.hasSuffix("/") ? String(root.dropLast()) : root
        func stemDrop(_ path: String, _ suffix: String) -> String {
            let name = (path as NSString).lastPathComponent
            return name.hasSuffix(suffix) ? String(name.dropLast(suffix.count)) : ((name as NSString).deletingPathExtension)
        }
        switch kind {
        case .cityscapes:
            let imgDir = "\(r)/leftImg8bit/\(split)", gtDir = "\(r)/gtFine/\(split)"
            try requireDir(imgDir, "Cityscapes image (leftImg8bit/\(split))")
            try requireDir(gtDir, "Cityscapes label (gtFine/\(split))")
            let images = files(under: imgDir, suffixes: ["_leftImg8bit.png"])
            let samples = try pair(images: images, what: "Cityscapes") { img in
                let rel = String(img.dropFirst(imgDir.count))  // /CITY/X_leftImg8bit.png
                let base = gtDir + String(rel.dropLast("_leftImg8bit.png".count))
                return [(base + "_gtFine_labelTrainIds.png", .trainId), (base + "_gtFine_labelIds.png", .labelId)]
            }
            let labels = files(under: gtDir, suffixes: ["_gtFine_labelIds.png", "_gtFine_labelTrainIds.png"])
            try checkNoOrphans(labels: labels, used: samples, labelDir: gtDir)
            return samples
        case .gta5:
            let imgDir = "\(r)/images", labDir = "\(r)/labels"
            try requireDir(imgDir, "GTA5 image (images)"); try requireDir(labDir, "GTA5 label (labels)")
            let images = files(under: imgDir, suffixes: [".png"])
            let samples = try pair(images: images, what: "GTA5") { img in
                let s = stemDrop(img, ".png")
                return [("\(labDir)/\(s)_labelTrainIds.png", .trainId), ("\(labDir)/\(s).png", .labelId)]
            }
            try checkNoOrphans(labels: files(under: labDir, suffixes: [".png"]), used: samples, labelDir: labDir)
            return samples
        case .bdd100k:
            let imgDir = "\(r)/images/10k/\(split)", labDir = "\(r)/labels/sem_seg/masks/\(split)"
            try requireDir(imgDir, "BDD100K image (images/10k/\(split))")
            try requireDir(labDir, "BDD100K label (labels/sem_seg/masks/\(split))")
            let images = files(under: imgDir, suffixes: [".jpg", ".jpeg", ".png"])
            let samples = try pair(images: images, what: "BDD100K") { img in
                let s = (((img as NSString).lastPathComponent) as NSString).deletingPathExtension
                return [("\(labDir)/\(s).png", .trainId), ("\(labDir)/\(s)_train_id.png", .trainId)]
            }
            try checkNoOrphans(labels: files(under: labDir, suffixes: [".png"]), used: samples, labelDir: labDir)
            return samples
        case .mapillary:
            let imgDir = "\(r)/half/val_img", labDir = "\(r)/half/val_label"
            try requireDir(imgDir, "Mapillary image (half/val_img)"); try requireDir(labDir, "Mapillary label (half/val_label)")
            let images = files(under: imgDir, suffixes: [".jpg", ".jpeg", ".png"])
            let samples = try pair(images: images, what: "Mapillary") { img in
                let s = (((img as NSString).lastPathComponent) as NSString).deletingPathExtension
                return [("\(labDir)/\(s).png", .trainId)]
            }
            try checkNoOrphans(labels: files(under: labDir, suffixes: [".png"]), used: samples, labelDir: labDir)
            return samples
        case .acdc:
            let conds = DatasetKind.acdcConditions
            let chosen: [String]
            if let c = selection?.lowercased() {
                guard conds.contains(c) else { throw CausalTuneError("acdc condition: '\(c)' is not one of fog, night, rain, snow") }
                chosen = [c]
            } else { chosen = conds }
            var all: [Sample] = []
            for c in chosen {
                let imgDir = "\(r)/rgb_anon/\(c)/\(split)", gtDir = "\(r)/gt/\(c)/\(split)"
                try requireDir(imgDir, "ACDC image (rgb_anon/\(c)/\(split))"); try requireDir(gtDir, "ACDC label (gt/\(c)/\(split))")
                let images = files(under: imgDir, suffixes: ["_rgb_anon.png"])
                let samples = try pair(images: images, what: "ACDC") { img in
                    let rel = String(img.dropFirst(imgDir.count))
                    let base = gtDir + String(rel.dropLast("_rgb_anon.png".count))
                    return [(base + "_gt_labelTrainIds.png", .trainId), (base + "_gt_labelIds.png", .labelId)]
                }
                try checkNoOrphans(labels: files(under: gtDir, suffixes: ["_gt_labelIds.png", "_gt_labelTrainIds.png"]),
                                   used: samples, labelDir: gtDir)
                all += samples
            }
            return all
        case .synthetic:
            let d = (selection ?? "source").lowercased()
            guard SyntheticDomain(rawValue: d) != nil else {
                throw CausalTuneError("synthetic domain: '\(d)' is not one of \(SyntheticDomain.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let imgDir = "\(r)/\(d)/images/\(split)", labDir = "\(r)/\(d)/labels/\(split)"
            try requireDir(imgDir, "synthetic image (\(d)/images/\(split); write it with `causal-tune synth`)")
            try requireDir(labDir, "synthetic label (\(d)/labels/\(split))")
            let images = files(under: imgDir, suffixes: [".png"])
            let samples = try pair(images: images, what: "synthetic") { img in
                [("\(labDir)/\((img as NSString).lastPathComponent)", .trainId)]
            }
            try checkNoOrphans(labels: files(under: labDir, suffixes: [".png"]), used: samples, labelDir: labDir)
            return samples
        case .folder:
            var imgDir = "\(r)/images", labDir = "\(r)/labels"
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: "\(imgDir)/\(split)", isDirectory: &isDir), isDir.boolValue {
                imgDir += "/\(split)"; labDir += "/\(split)"
            }
            try requireDir(imgDir, "image (images)"); try requireDir(labDir, "label (labels)")
            let images = files(under: imgDir, suffixes: [".png", ".jpg", ".jpeg"])
            let samples = try pair(images: images, what: "folder") { img in
                let s = (((img as NSString).lastPathComponent) as NSString).deletingPathExtension
                let st = FileStem.of(img)
                return [("\(labDir)/\(s).png", .trainId), ("\(labDir)/\(st).png", .trainId)]
            }
            try checkNoOrphans(labels: files(under: labDir, suffixes: [".png"]), used: samples, labelDir: labDir)
            return samples
        }
    }
}

/// Label values that the encoding does not define (train ids 19…254, label ids 34…254)
/// become ignore (255); each file holding such values is reported once, with the count, so
/// a dataset in the wrong encoding does not train silently on nothing.
public enum LabelValueReport {
    // Both guarded by `lock`.
    nonisolated(unsafe) private static var reported: Set<String> = []
    nonisolated(unsafe) private static var reportLogger = Logger(label: "causal-tune.data")
    private static let lock = NSLock()

    /// Where the one-line warnings go: swift-log, which the command line routes to the
    /// running command's log (stderr, and `train.log` during training).
    public static var logger: Logger {
        get { lock.lock(); defer { lock.unlock() }; return reportLogger }
        set { lock.lock(); reportLogger = newValue; lock.unlock() }
    }

    /// The first undefined value and how many pixels hold undefined values, or nil.
    public static func undefinedValues(_ map: LabelMap, encoding: LabelEncoding) -> (first: UInt8, count: Int)? {
        let limit: UInt8 = encoding == .trainId ? UInt8(Cityscapes.numClasses) : 34
        var count = 0
        var first: UInt8 = 0
        map.labels.withUnsafeBufferPointer { p in
            for v in p where v >= limit && v != 255 {
                if count == 0 { first = v }
                count += 1
            }
        }
        return count > 0 ? (first, count) : nil
    }

    /// Reports `file` once when it holds undefined values.
    public static func check(_ map: LabelMap, encoding: LabelEncoding, file: String) {
        guard let (first, count) = undefinedValues(map, encoding: encoding) else { return }
        lock.lock()
        let isNew = reported.insert(file).inserted
        let logger = reportLogger
        lock.unlock()
        guard isNew else { return }
        let range = encoding == .trainId ? "train ids 0…18 and 255" : "Cityscapes label ids 0…33 and 255"
        logger.warning("\(file): \(count) of \(map.labels.count) pixels hold values outside \(range) (first: \(first)); they are ignored as 255 — is the dataset's label encoding right?")
    }
}
