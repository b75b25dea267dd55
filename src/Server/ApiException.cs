using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Kangaroo.Native.Server;

/// <summary>A refused request: the HTTP status and the fields of OpenAI's error object
/// <c>{"error": {"message", "type", "param", "code"}}</c>.</summary>
internal sealed class ApiException(int status, string message, string? param = null, string? code = null) : Exception(message)
{
    public int Status { get; } = status;
    public string? Param { get; } = param;
    public string? Code { get; } = code;

    /// <summary>OpenAI's error type for the status: a client's mistake or the server's condition.</summary>
    public string Type => Status < 500 ? "invalid_request_error" : "server_error";

    public static ApiException InvalidType(string param, string expected, JsonElement got) =>
        new(StatusCodes.Status400BadRequest, $"'{param}' must be {expected}, not {Describe(got)}", param, "invalid_type");

    public static ApiException InvalidValue(string param, string message) => new(StatusCodes.Status400BadRequest, message, param, "invalid_value");

    public static ApiException Unsupported(string param, string message) => new(StatusCodes.Status400BadRequest, message, param, "unsupported_parameter");

    private static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "a list",
        JsonValueKind.String => "a string",
        JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False => value.GetRawText(),
        _ => "null",
    };
}
