import Foundation
import Hummingbird
import NIOCore
import VestnikAPI
import VestnikCore

/// `GET /api/v1/events`: the HTTP catch-up over the same log as the stream.
struct EventController {
    let services: Services

    func addRoutes(to group: RouterGroup<AuthenticatedRequestContext>) {
        group.get("events", use: catchUp)
    }

    /// GET /api/v1/events?since=…&limit=…
    ///
    /// Without `since` the answer is empty and `next` is the current head: a client fetches its
    /// snapshot (chats, history), then polls from there.
    ///
    /// The payloads are stored already encoded, so the page is assembled from bytes rather than
    /// decoded and re-encoded.
    @Sendable func catchUp(_ request: Request, context: AuthenticatedRequestContext) async throws -> Response {
        let limit = try request.queryInt("limit", in: 1...1000) ?? 500
        guard let rawSince = try request.queryInt("since", in: 0...Int64.max) else {
            let head = try await services.sync.headPosition()
            return try EventPage(events: [], next: head, hasMore: false).response(from: request, context: context)
        }
        let since = EventSeq(rawSince)
        let page = try await services.sync.catchUp(since: since, limit: Int(limit), as: context.session)
        var buffer = ByteBuffer()
        buffer.writeString("{\"events\":[")
        for (index, event) in page.events.enumerated() {
            if index > 0 { buffer.writeString(",") }
            buffer.writeString("{\"seq\":\(event.seq.value),\"event\":")
            buffer.writeBytes(event.payload)
            buffer.writeString("}")
        }
        buffer.writeString("],\"next\":\(page.next.value),\"has_more\":\(page.hasMore)}")
        return Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: buffer))
    }
}

/// Builds the stream's frames from stored payload bytes.
enum StreamFrames {
    static func event(seq: EventSeq, payload: Data) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(payload.count + 48)
        buffer.writeString("{\"type\":\"event\",\"seq\":\(seq.value),\"event\":")
        buffer.writeBytes(payload)
        buffer.writeString("}")
        return buffer
    }

    static func ephemeral(payload: Data) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeString("{\"type\":\"ephemeral\",\"event\":")
        buffer.writeBytes(payload)
        buffer.writeString("}")
        return buffer
    }

    static func control(_ frame: ServerFrame) -> ByteBuffer {
        ByteBuffer(bytes: (try? VestnikJSON.encode(frame)) ?? Data("{\"type\":\"error\",\"code\":\"internal_error\"}".utf8))
    }
}
