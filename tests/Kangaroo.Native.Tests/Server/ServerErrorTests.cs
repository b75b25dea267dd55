using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using OpenAI.Chat;

namespace Kangaroo.Native.Tests.Server;

/// <summary>Every refusal is OpenAI's error object with the right status, and names the offending field.</summary>
public sealed class ServerErrorTests
{
    private static readonly object[] Hello = [new { role = "user", content = "Hello" }];

    /// <summary>Asserts OpenAI's error shape: exactly <c>{"error": {message, type, param, code}}</c>.</summary>
    private static JsonElement AssertError((int Status, JsonElement Body, HttpResponseMessage Response) result, int status, string? param, params string[] fragments)
    {
        Assert.Equal(status, result.Status);
        Assert.Equal("application/json", result.Response.Content.Headers.ContentType!.MediaType);
        var error = Assert.Single(result.Body.EnumerateObject());
        Assert.Equal("error", error.Name);
        Assert.Equal(["message", "type", "param", "code"], error.Value.EnumerateObject().Select(p => p.Name));
        Assert.Equal(status < 500 ? "invalid_request_error" : "server_error", error.Value.GetProperty("type").GetString());
        Assert.Equal(param, error.Value.GetProperty("param").GetString());
        var message = error.Value.GetProperty("message").GetString()!;
        Assert.DoesNotContain('\n', message);
        foreach (var fragment in fragments) Assert.Contains(fragment, message);
        return error.Value;
    }

    [Fact]
    public async Task MalformedJsonAndWrongTypesAre400NamingTheField()
    {
        await using var server = await TestServer.Start();
        AssertError(await server.Post("/v1/chat/completions", "{\"messages\": [", null), 400, null, "not valid JSON");
        AssertError(await server.Post("/v1/chat/completions", "", null), 400, null, "not valid JSON");
        AssertError(await server.Post("/v1/chat/completions", "[1, 2]", null), 400, null, "JSON object");

        var cases = new (string Path, string Json, string Param, string Fragment)[]
        {
            ("/v1/chat/completions", """{"messages": "hi"}""", "messages", "a list of messages"),
            ("/v1/chat/completions", """{"messages": []}""", "messages", "empty"),
            ("/v1/chat/completions", """{}""", "messages", "required"),
            ("/v1/chat/completions", """{"messages": [{"role": "user", "content": 3}]}""", "messages[0].content", "not 3"),
            ("/v1/chat/completions", """{"messages": [{"role": "user"}]}""", "messages[0].content", "required"),
            ("/v1/chat/completions", """{"messages": [{"role": "wizard", "content": "hi"}]}""", "messages[0].role", "'wizard' is not a role"),
            ("/v1/chat/completions", """{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}""", "messages[0].content[0].type", "image_url"),
            ("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}""", "temperature", "a number"),
            ("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "temperature": 3}""", "temperature", "from 0 to 2"),
            ("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "top_p": 0}""", "top_p", "greater than 0"),
            ("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1.5}""", "max_tokens", "an integer, not 1.5"),
            ("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "max_tokens": "10"}""", "max_tokens", "an integer, not a string"),
            ("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}""", "max_tokens", ">= 0"),
            ("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 1000000000000}""", "max_completion_tokens", "context of 512"),
            ("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 513}""", "max_tokens", "context of 512"),
            ("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "seed": 1.5}""", "seed", "an integer"),
            ("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "stop": 3}""", "stop", "a string or a list of strings"),
            ("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b", "c", "d", "e"]}""", "stop", "at most 4"),
            ("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}""", "stream", "a boolean"),
            ("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "stream": true, "stream_options": {"include_usage": 1}}""", "stream_options.include_usage", "a boolean"),
            ("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "model": 7}""", "model", "a string"),
            ("/v1/completions", """{"prompt": {"text": "hi"}}""", "prompt", "a string or a list of token ids"),
            ("/v1/completions", """{"prompt": [1, 9999]}""", "prompt", "outside the model's vocabulary of 512"),
            ("/v1/completions", """{"prompt": []}""", "prompt", "empty"),
            ("/v1/completions", """{"max_tokens": 5}""", "prompt", "required"),
        };
        foreach (var (path, json, param, fragment) in cases)
        {
            var error = AssertError(await server.Post(path, json), 400, param, fragment);
            Assert.NotNull(error.GetProperty("code").GetString());
        }
        Assert.Equal(0, (await server.Health()).GetProperty("slots_busy").GetInt32());
    }

    [Fact]
    public async Task UnsupportedOptionsAreRefusedAndTheirNeutralValuesAccepted()
    {
        await using var server = await TestServer.Start();
        foreach (var (field, value) in new (string, object)[]
        {
            ("n", 2), ("tools", new[] { new { type = "function", function = new { name = "f" } } }), ("tool_choice", "auto"),
            ("response_format", new { type = "json_object" }), ("logprobs", true), ("presence_penalty", 0.5), ("logit_bias", new Dictionary<string, int> { ["1"] = 5 }),
        })
        {
            var body = new Dictionary<string, object> { ["messages"] = Hello, ["max_tokens"] = 2, [field] = value };
            Assert.Equal("unsupported_parameter", AssertError(await server.Post("/v1/chat/completions", body), 400, field).GetProperty("code").GetString());
        }
        AssertError(await server.Post("/v1/completions", new { prompt = "hi", n = 3 }), 400, "n", "n must be 1");
        AssertError(await server.Post("/v1/completions", new { prompt = "hi", echo = true }), 400, "echo", "not supported");
        AssertError(await server.Post("/v1/chat/completions", new { messages = new[] { new { role = "tool", content = "42" } } }), 400, "messages[0].role", "tool messages");

        var neutral = await server.Post("/v1/chat/completions", new
        {
            messages = Hello, max_tokens = 2, n = 1, tools = Array.Empty<object>(), response_format = new { type = "text" }, logprobs = false,
            presence_penalty = 0, frequency_penalty = 0, logit_bias = new { }, user = "someone", metadata = new { a = "b" },
        });
        Assert.Equal(200, neutral.Status);

        // The official client refuses nothing itself: the server's 400 reaches it.
        var chat = server.Chat();
        var options = new ChatCompletionOptions { Tools = { ChatTool.CreateFunctionTool("weather", "the weather") } };
        var refused = await Assert.ThrowsAsync<ClientResultException>(() => chat.CompleteChatAsync([new UserChatMessage("Hello")], options));
        Assert.Equal(400, refused.Status);
        Assert.Contains("tools are not supported", refused.Message);
    }

    [Fact]
    public async Task APromptLongerThanTheContextIs400NamingTheContext()
    {
        await using var server = await TestServer.Start();
        var story = string.Concat(Enumerable.Repeat("Once upon a time there was a little dog. ", 80));
        var chat = AssertError(await server.Post("/v1/chat/completions", new { messages = new[] { new { role = "user", content = story } } }), 400, "messages",
            "the context is 512 positions");
        Assert.Equal("context_length_exceeded", chat.GetProperty("code").GetString());
        AssertError(await server.Post("/v1/completions", new { prompt = story }), 400, "prompt", "the context is 512 positions");
        AssertError(await server.Post("/v1/completions", new { prompt = Enumerable.Repeat(1, 513).ToArray() }), 400, "prompt", "513 tokens but the context is 512");

        // A prompt that fits leaves max_tokens clamped to the room left, as `generate` clamps --max-new-tokens.
        var fits = await server.Post("/v1/completions", new { prompt = Enumerable.Repeat(1, 500).ToArray(), max_tokens = 100, temperature = 0 });
        Assert.Equal(200, fits.Status);
        Assert.True(fits.Body.GetProperty("usage").GetProperty("completion_tokens").GetInt32() <= 13);
    }

    [Fact]
    public async Task AnUnknownModelIs404AndNoModelNameIsAPath()
    {
        await using var server = await TestServer.Start();
        foreach (var model in new[] { "gpt-4o", "../models/stories260K/stories260K.bin", "/etc/passwd" })
        {
            var error = AssertError(await server.Post("/v1/chat/completions", new { model, messages = Hello }), 404, "model", $"'{model}' does not exist");
            Assert.Equal("model_not_found", error.GetProperty("code").GetString());
        }
        var client = await Assert.ThrowsAsync<ClientResultException>(() =>
            new ChatClient("gpt-4o", new ApiKeyCredential("x"), new OpenAI.OpenAIClientOptions { Endpoint = new Uri(server.BaseAddress, "v1") }).CompleteChatAsync("Hello"));
        Assert.Equal(404, client.Status);

        using var unknownPath = await server.Http.GetAsync("/v1/embeddings");
        Assert.Equal(HttpStatusCode.NotFound, unknownPath.StatusCode);
        using var wrongMethod = await server.Http.GetAsync("/v1/chat/completions");
        Assert.Equal(HttpStatusCode.MethodNotAllowed, wrongMethod.StatusCode);
        Assert.Contains("error", await wrongMethod.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task AnOversizedBodyIs413()
    {
        await using var server = await TestServer.Start(maxRequestBodyBytes: 4096);
        var big = JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = new string('a', 10_000) } } });
        AssertError(await server.Post("/v1/chat/completions", big), 413, null, "larger than 4096 bytes");

        // Without a Content-Length (chunked), the limit is met while reading.
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new PushStreamContent(big) };
        using var response = await server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Contains("larger than 4096 bytes", await response.Content.ReadAsStringAsync());
        Assert.Equal(200, (await server.Post("/v1/chat/completions", new { messages = Hello, max_tokens = 2 })).Status);
    }

    [Fact]
    public async Task WithAnApiKeyEveryRequestButHealthNeedsIt()
    {
        await using var server = await TestServer.Start(apiKey: "s3cret");
        var reply = await server.Chat("s3cret").CompleteChatAsync([new UserChatMessage("Hello")], new ChatCompletionOptions { MaxOutputTokenCount = 5 });
        Assert.Equal(5, reply.Value.Usage.OutputTokenCount);

        var wrong = await Assert.ThrowsAsync<ClientResultException>(() => server.Chat("guess").CompleteChatAsync("Hello"));
        Assert.Equal(401, wrong.Status);
        AssertError(await server.Post("/v1/chat/completions", new { messages = Hello }), 401, null, "missing API key");
        AssertError(await server.Post("/v1/chat/completions", new { messages = Hello }, apiKey: "s3cre"), 401, null, "incorrect API key");
        var models = await Assert.ThrowsAsync<ClientResultException>(() => server.Client("nope").GetOpenAIModelClient().GetModelsAsync());
        Assert.Equal(401, models.Status);
        Assert.Equal(TestServer.ModelId, (await server.Client("s3cret").GetOpenAIModelClient().GetModelsAsync()).Value.Single().Id);
        Assert.Equal("ok", (await server.Health()).GetProperty("status").GetString());
    }

    /// <summary>A body sent chunked, without a Content-Length.</summary>
    private sealed class PushStreamContent(string text) : HttpContent
    {
        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => stream.WriteAsync(Encoding.UTF8.GetBytes(text)).AsTask();

        protected override bool TryComputeLength(out long length)
        {
            length = -1;
            return false;
        }
    }
}
