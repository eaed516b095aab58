import Config

/// `model.head`: which decode head, the blocks it reads and the number of classes.
public struct HeadOptions: Equatable, Sendable, Decodable {
    public enum HeadType: String, CaseIterable, Sendable, Decodable { case linear, mask2former }

    public var type: HeadType
    /// The blocks whose features the head reads; nil: the quarter points of the depth.
    public var outIndices: [Int]?
    public var numClasses: Int

    /// The most classes: predictions and label maps are 8-bit with 255 = ignore, so class
    /// indices are 0…254.
    public static let maxClasses = 255

    public static let schema: ConfigSchema = .map([
        "type": .choice(HeadType.linear),
        "out_indices": .ints(nil, min: 0, max: 255),
        "num_classes": .int(19, min: 1, max: maxClasses),
    ])

    public init(type: HeadType = .linear, outIndices: [Int]? = nil, numClasses: Int = 19) {
        self.type = type
        self.outIndices = outIndices
        self.numClasses = numClasses
    }
}
