import Testing

@testable import Front

struct GRPCServerTests {
    @Test(
        "application/grpc and its +subtype or parameter forms are gRPC content types",
        arguments: [
            "application/grpc", "application/grpc+proto", "application/grpc; charset=utf-8",
        ])
    func grpcContentTypes(value: String) {
        #expect(GRPCServer.isGRPCContentType(value))
    }

    @Test(
        "other content types are answered with HTTP 415",
        arguments: [
            "", "application/json", "application/grpc-web", "application/grpcx", "text/plain", "application/gRPC",
        ])
    func otherContentTypes(value: String) {
        #expect(!GRPCServer.isGRPCContentType(value))
    }
}
