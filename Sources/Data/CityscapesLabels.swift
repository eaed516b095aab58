import ImageIO
/// The 19 Cityscapes evaluation classes and the official label-id → train-id table.
///
/// From cityscapesScripts' `helpers/labels.py`: label ids 7, 8, 11, 12, 13, 17, 19, 20, 21,
/// 22, 23, 24, 25, 26, 27, 28, 31, 32, 33 map to train ids 0…18 in that order; every other
/// id (unlabeled, ego vehicle, ground, parking, rail track, guard rail, bridge, tunnel,
/// pole group, caravan, trailer, license plate …) maps to 255 = ignore.
public enum Cityscapes {
    /// Train-id order class names, as mmseg and cityscapesScripts spell them.
    public static let classNames: [String] = [
        "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
        "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
        "motorcycle", "bicycle",
    ]

    public static let numClasses = 19
    public static let ignoreIndex: UInt8 = 255

    /// The label id of each train id (0…18).
    public static let trainIdToLabelId: [UInt8] = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]

    /// 256-entry lookup: label id → train id (255 for every non-evaluated id).
    public static let labelIdToTrainId: [UInt8] = {
        var t = [UInt8](repeating: 255, count: 256)
        for (train, label) in trainIdToLabelId.enumerated() { t[Int(label)] = UInt8(train) }
        return t
    }()

    /// The RGB colour of each train id (the Cityscapes palette), for visualisations.
    public static let palette: [(UInt8, UInt8, UInt8)] = [
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
        (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
        (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ]
}

/// How label files encode classes.
public enum LabelEncoding: String, Sendable, CaseIterable {
    /// Values are train ids 0…18, 255 ignore (values 19…254 are treated as ignore too).
    case trainId = "trainid"
    /// Values are Cityscapes label ids 0…33 (mapped through the official table).
    case labelId = "labelid"

    /// Maps a label map to train ids in place.
    public func toTrainIds(_ map: inout LabelMap) {
        switch self {
        case .trainId:
            map.labels.withUnsafeMutableBufferPointer { p in
                for i in 0..<p.count where p[i] >= 19 { p[i] = 255 }
            }
        case .labelId:
            let table = Cityscapes.labelIdToTrainId
            table.withUnsafeBufferPointer { t in
                map.labels.withUnsafeMutableBufferPointer { p in
                    for i in 0..<p.count { p[i] = t[Int(p[i])] }
                }
            }
        }
    }
}
