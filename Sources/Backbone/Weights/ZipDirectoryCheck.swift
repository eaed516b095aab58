import Core
import Foundation

/// Checks that a zip's directory points inside the file before ZIPFoundation reads it.
///
/// ZIPFoundation turns the central directory's offset and each entry's local-header offset
/// into an `off_t` without a range check, so a crafted ZIP64 value above `Int64.max` traps
/// (found by `launch/fuzz`). We read the end-of-central-directory record (and its ZIP64 form),
/// then every central-directory entry, and refuse an offset or size beyond the file with
/// one line. A file without an end record is left to ZIPFoundation, which refuses it.
enum ZipDirectoryCheck {
    static func check(_ path: String) throws {
        guard let file = FileHandle(forReadingAtPath: path) else { return }
        defer { try? file.close() }
        let length = (try? file.seekToEnd()) ?? 0
        func read(_ offset: UInt64, _ count: UInt64) -> [UInt8]? {
            guard offset <= length, count <= length - offset, (try? file.seek(toOffset: offset)) != nil,
                  let d = try? file.read(upToCount: Int(count)), d.count == Int(count) else { return nil }
            return [UInt8](d)
        }
        func bad(_ what: String) -> CausalTuneError {
            CausalTuneError("weights file \(path): \(what) lies outside the file (corrupt zip archive)")
        }
        let tailCount = min(length, 65_557 + 20)
        guard let tail = read(length - tailCount, tailCount) else { return }
        func u16(_ b: [UInt8], _ i: Int) -> UInt64 { UInt64(b[i]) | UInt64(b[i + 1]) << 8 }
        func u32(_ b: [UInt8], _ i: Int) -> UInt64 { u16(b, i) | u16(b, i + 2) << 16 }
        func u64(_ b: [UInt8], _ i: Int) -> UInt64 { u32(b, i) | u32(b, i + 4) << 32 }
        guard tail.count >= 22,
              let eocd = stride(from: tail.count - 22, through: 0, by: -1).first(where: { u32(tail, $0) == 0x0605_4b50 })
        else { return }
        var cdSize = u32(tail, eocd + 12), cdOffset = u32(tail, eocd + 16)
        if eocd >= 20, u32(tail, eocd - 20) == 0x0706_4b50 {
            let zip64End = u64(tail, eocd - 12)
            guard let record = read(zip64End, 56), u32(record, 0) == 0x0606_4b50 else {
                throw bad("the ZIP64 end of the central directory")
            }
            cdSize = u64(record, 40)
            cdOffset = u64(record, 48)
        }
        guard let directory = read(cdOffset, cdSize) else { throw bad("the central directory") }
        var i = 0
        while i + 46 <= directory.count, u32(directory, i) == 0x0201_4b50 {
            let nameLength = Int(u16(directory, i + 28)), extraLength = Int(u16(directory, i + 30))
            let commentLength = Int(u16(directory, i + 32))
            // The 32-bit fields that read 0xFFFFFFFF are in the ZIP64 extra field, in this order.
            var sizes = [u32(directory, i + 24), u32(directory, i + 20)], localHeader = u32(directory, i + 42)
            var extra = i + 46 + nameLength
            let extraEnd = min(directory.count, extra + extraLength)
            while extra + 4 <= extraEnd {
                let id = u16(directory, extra), size = Int(u16(directory, extra + 2))
                var field = extra + 4
                if id == 0x0001 {
                    for k in 0..<2 where sizes[k] == 0xFFFF_FFFF && field + 8 <= extraEnd {
                        sizes[k] = u64(directory, field); field += 8
                    }
                    if localHeader == 0xFFFF_FFFF && field + 8 <= extraEnd { localHeader = u64(directory, field) }
                }
                extra += 4 + size
            }
            guard localHeader <= length else { throw bad("an entry's local header") }
            guard sizes[1] <= length else { throw bad("an entry's compressed data") }
            i += 46 + nameLength + extraLength + commentLength
        }
    }
}
