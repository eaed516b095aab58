/// Decodes a module's options type from its section of a resolved config.
///
/// Each module declares its options as a plain `Decodable` struct next to its schema
/// (defaults, ranges, choices); nothing reads keys by string. Property names map to
/// config keys by snake case (`imageSize` ↔ `image_size`), enums by their raw values,
/// optionals by `null`. The section has already been checked against the same schema,
/// so a decoding failure means the options type and its schema disagree: a programming
/// error, reported with the key path.
public enum ConfigDecoder {
    public static func decode<T: Decodable>(_ type: T.Type, from value: ConfigValue, path: String = "") throws -> T {
        try T(from: ValueDecoder(value: value, path: path))
    }

    /// A section on its own: `value` resolved against `schema` (defaults filled, every
    /// rule checked; errors name `path` and `origin`), then decoded.
    public static func decode<T: Decodable>(_ type: T.Type, section value: ConfigValue, schema: ConfigSchema,
                                            path: String, origin: String) throws -> T {
        guard let resolved = try schema.resolve(value, path: path, origin: origin, full: true) else {
            preconditionFailure("full resolution returns a value")
        }
        return try decode(type, from: resolved, path: path)
    }

    /// `imageSize` → `image_size`.
    static func snakeCase(_ name: String) -> String {
        var out = ""
        for ch in name {
            if ch.isUppercase { out += "_" + ch.lowercased() } else { out.append(ch) }
        }
        return out
    }

    static func mismatch(_ path: String, _ expected: Any.Type, _ value: ConfigValue) -> DecodingError {
        .typeMismatch(expected, .init(codingPath: [], debugDescription: "config key '\(path)': \(value.flow) is not \(expected)"))
    }

    /// A scalar as the primitive type `T` asks for.
    static func scalar<T>(_ type: T.Type, _ value: ConfigValue, path: String) throws -> T {
        let result: Any?
        switch (value, type) {
        case (.bool(let b), is Bool.Type): result = b
        case (.string(let s), is String.Type): result = s
        case (.int(let i), is Int.Type): result = i
        case (.int(let i), is Int64.Type): result = Int64(i)
        case (.int(let i), is UInt64.Type): result = i >= 0 ? UInt64(i) : nil
        case (.int(let i), is Double.Type): result = Double(i)
        case (.float(let d), is Double.Type): result = d
        case (.int(let i), is Float.Type): result = Float(i)
        case (.float(let d), is Float.Type): result = Float(d)
        default: result = nil
        }
        guard let typed = result as? T else { throw mismatch(path, T.self, value) }
        return typed
    }
}

/// One value of the tree, seen as a `Decoder`.
private struct ValueDecoder: Decoder, SingleValueDecodingContainer {
    let value: ConfigValue
    let path: String
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .map(let map) = value else { throw ConfigDecoder.mismatch(path, ConfigMap.self, value) }
        return KeyedDecodingContainer(MapContainer<Key>(map: map, path: path))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .list(let items) = value else { throw ConfigDecoder.mismatch(path, [ConfigValue].self, value) }
        return ListContainer(items: items, path: path)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    func decodeNil() -> Bool { value == .null }
    func decode(_ type: Bool.Type) throws -> Bool { try ConfigDecoder.scalar(type, value, path: path) }
    func decode(_ type: String.Type) throws -> String { try ConfigDecoder.scalar(type, value, path: path) }
    func decode(_ type: Double.Type) throws -> Double { try ConfigDecoder.scalar(type, value, path: path) }
    func decode(_ type: Float.Type) throws -> Float { try ConfigDecoder.scalar(type, value, path: path) }
    func decode(_ type: Int.Type) throws -> Int { try ConfigDecoder.scalar(type, value, path: path) }
    func decode(_ type: Int64.Type) throws -> Int64 { try ConfigDecoder.scalar(type, value, path: path) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try ConfigDecoder.scalar(type, value, path: path) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try T(from: self) }
}

private struct MapContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let map: ConfigMap
    let path: String
    var codingPath: [any CodingKey] { [] }
    var allKeys: [Key] { [] }

    func key(_ key: Key) -> String { ConfigDecoder.snakeCase(key.stringValue) }
    func child(_ key: Key) -> String { path.isEmpty ? self.key(key) : "\(path).\(self.key(key))" }

    func contains(_ key: Key) -> Bool { map[self.key(key)] != nil }

    func value(_ key: Key) throws -> ValueDecoder {
        guard let v = map[self.key(key)] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: [], debugDescription: "config key '\(child(key))' missing"))
        }
        return ValueDecoder(value: v, path: child(key))
    }

    func decodeNil(forKey key: Key) throws -> Bool { map[self.key(key)] ?? .null == .null }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try T(from: value(key)) }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try value(key).decode(type) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try value(key).decode(type) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try value(key).decode(type) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try value(key).decode(type) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try value(key).decode(type) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try value(key).decode(type) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try value(key).decode(type) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey> { try value(key).container(keyedBy: type) }
    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer { try value(key).unkeyedContainer() }
    func superDecoder() throws -> any Decoder { ValueDecoder(value: .map(map), path: path) }
    func superDecoder(forKey key: Key) throws -> any Decoder { try value(key) }
}

private struct ListContainer: UnkeyedDecodingContainer {
    let items: [ConfigValue]
    let path: String
    var currentIndex = 0
    var codingPath: [any CodingKey] { [] }
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    init(items: [ConfigValue], path: String) { self.items = items; self.path = path }

    mutating func next() throws -> ValueDecoder {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(Any.self, .init(codingPath: [], debugDescription: "config key '\(path)': list ended"))
        }
        defer { currentIndex += 1 }
        return ValueDecoder(value: items[currentIndex], path: "\(path)[\(currentIndex)]")
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, items[currentIndex] == .null else { return false }
        currentIndex += 1
        return true
    }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try T(from: next()) }
    mutating func decode(_ type: Bool.Type) throws -> Bool { try next().decode(type) }
    mutating func decode(_ type: String.Type) throws -> String { try next().decode(type) }
    mutating func decode(_ type: Double.Type) throws -> Double { try next().decode(type) }
    mutating func decode(_ type: Float.Type) throws -> Float { try next().decode(type) }
    mutating func decode(_ type: Int.Type) throws -> Int { try next().decode(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try next().decode(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try next().decode(type) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
        -> KeyedDecodingContainer<NestedKey> { try next().container(keyedBy: type) }
    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { try next().unkeyedContainer() }
    mutating func superDecoder() throws -> any Decoder { try next() }
}
