using System.ClientModel;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.RegularExpressions;
using Kangaroo.Native.Tests.Cli;
using OpenAI;
using OpenAI.Chat;

namespace Kangaroo.Native.Tests.Server;

/// <summary><c>kangaroo serve</c> as a process, as a user runs it: it says where it listens in one line, answers as
/// <c>generate</c> does, and on SIGTERM finishes what is in flight and exits 0.</summary>
public sealed partial class ServeCommandTests
{
    private const int SigTerm = 15;

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    [Fact]
    public async Task ServeAnswersAsGenerateDoesAndStopsCleanlyOnSigterm()
    {
        var expected = OpenAiServerTests.Generate("Tell me about a cat.", 40, chat: true);
        var start = KangarooProcess.Start("dotnet", [Path.Combine(AppContext.BaseDirectory, "kangaroo.dll"), "serve", "--port", "0", "--device", "cpu",
            "--chat-template", TestServer.TemplatePath]);
        start.Environment["KANGAROO_API_KEY"] = "k3y";
        using var process = Process.Start(start)!;
        try
        {
            var listening = await process.StandardError.ReadLineAsync().WaitAsync(TimeSpan.FromMinutes(3));
            var stderrRest = process.StandardError.ReadToEndAsync();
            Assert.NotNull(listening);
            Assert.Matches(ListeningLine(), listening);
            var url = new Uri(ListeningLine().Match(listening).Groups["url"].Value);

            var chat = new ChatClient(TestServer.ModelId, new ApiKeyCredential("k3y"), new OpenAIClientOptions { Endpoint = new Uri(url, "v1") });
            var reply = await chat.CompleteChatAsync([new UserChatMessage("Tell me about a cat.")], new ChatCompletionOptions { MaxOutputTokenCount = 40, Temperature = 0 });
            Assert.Equal(expected.Text, reply.Value.Content[0].Text);

            using var http = new HttpClient { BaseAddress = url };
            var health = JsonDocument.Parse(await http.GetStringAsync("/health")).RootElement; // no key needed
            Assert.Equal("auto", health.GetProperty("decoder").GetString()); // the default, with the adapter beside the embedded model
            Assert.NotEmpty(health.GetProperty("speculation").GetString()!);
            using (var unauthorized = await http.PostAsync("/v1/models", null)) Assert.Equal(HttpStatusCode.Unauthorized, unauthorized.StatusCode);

            // A stream in flight when SIGTERM comes is finished; then the process exits 0 and nothing listens.
            http.DefaultRequestHeaders.Authorization = new("Bearer", "k3y");
            using var stream = await Sse.Open(http, "/v1/completions", new { prompt = "Once upon a time", max_tokens = 400, temperature = 0, stream = true });
            var events = new List<string>();
            await using (var reader = Sse.Events(stream).GetAsyncEnumerator())
            {
                Assert.True(await reader.MoveNextAsync());
                Assert.Equal(0, kill(process.Id, SigTerm));
                while (await reader.MoveNextAsync()) events.Add(reader.Current);
            }
            Assert.Equal("[DONE]", events[^1]);
            Assert.True(process.WaitForExit(TimeSpan.FromMinutes(1)), "serve did not exit after SIGTERM");
            Assert.Equal(0, process.ExitCode);
            Assert.Equal("", await stderrRest); // the listening line was all it said
            using var fresh = new HttpClient();
            await Assert.ThrowsAsync<HttpRequestException>(() => fresh.GetAsync(new Uri(url, "health")));
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }

    [Fact]
    public void BadOptionsEndWithOneLine()
    {
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("serve", "--port", "70000"), "--port 70000 must be from 0 to 65535");
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("serve", "--parallel", "0"), "--parallel 0 must be >= 1");
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("serve", "--device", "cpu", "--host", "example.com", "--port", "0"), "--host 'example.com' is not an IP address");

        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("serve", "--device", "cpu", "--port", $"{port}"), $"127.0.0.1:{port}", "address already in use");
    }

    [GeneratedRegex(@"^kangaroo: serving stories260K on (?<url>http://127\.0\.0\.1:\d+) \(device cpu, context 512, decoder auto: .+\); API key required$")]
    private static partial Regex ListeningLine();
}
