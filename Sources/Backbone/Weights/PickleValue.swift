import Foundation

/// The values `Unpickler` decodes a pickle to; calls and persistent ids become the
/// data they describe (`.tensor`, `.storage`, `.object`), never running code.
indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    case global(module: String, name: String)
    case storage(PickleStorage)
    case tensor(PickleTensor)
    case object(callable: String)

    var string: String? { if case .string(let s) = self { return s }; return nil }
    var int: Int? {
        switch self {
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }
    var intTuple: [Int]? {
        switch self {
        case .tuple(let items): return items.compactMap(\.int).count == items.count ? items.compactMap(\.int) : nil
        case .list(let l): return l.items.compactMap(\.int).count == l.items.count ? l.items.compactMap(\.int) : nil
        default: return nil
        }
    }
}

final class PickleList {
    var items: [PickleValue] = []
    /// Nesting depth of the deepest item + 1 (maintained by the unpickler).
    var depth = 1
    /// Set once the list is placed inside another container: from then on it may not
    /// change (no cycles, and the recorded depth stays exact).
    var sealed = false
}

/// An insertion-ordered dict (pickled dicts keep their order).
final class PickleDict {
    private var storedKeys: [PickleValue] = []
    /// The keys in order. Assigning them directly (instead of `set`) is allowed; the lookup
    /// index is then rebuilt on the next lookup.
    var keys: [PickleValue] {
        get { storedKeys }
        set { storedKeys = newValue; index = nil }
    }
    var values: [PickleValue] = []
    /// Nesting depth of the deepest key or value + 1 (maintained by the unpickler).
    var depth = 1
    /// See `PickleList.sealed`.
    var sealed = false
    /// String key → index of its first occurrence, so a dict of n entries is built in O(n),
    /// not O(n²); nil after `keys` was assigned from outside.
    private var index: [String: Int]? = [:]

    private func lookup() -> [String: Int] {
        if let index { return index }
        var rebuilt: [String: Int] = [:]
        for (i, k) in storedKeys.enumerated() { if let s = k.string, rebuilt[s] == nil { rebuilt[s] = i } }
        index = rebuilt
        return rebuilt
    }

    func set(_ key: PickleValue, _ value: PickleValue) {
        if let s = key.string, let i = lookup()[s] {
            values[i] = value
        } else {
            if let s = key.string { index?[s] = storedKeys.count }
            storedKeys.append(key)
            values.append(value)
        }
    }
    subscript(_ key: String) -> PickleValue? {
        lookup()[key].map { values[$0] }
    }
}

struct PickleStorage {
    let type: StoredType
    let key: String
    let count: Int
}

struct PickleTensor {
    let storage: PickleStorage
    let offset: Int
    let shape: [Int]
    let strides: [Int]
}

struct PickleError: Error { let message: String }
