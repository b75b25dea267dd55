using System.Net;
using Kangaroo.Native.Server.Scheduling;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Kangaroo.Native.Server;

/// <summary>How the server listens and what it admits.</summary>
public sealed class ServerOptions
{
    /// <summary>An IP address, or <c>localhost</c> (127.0.0.1).</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>0: a free port, chosen when the server starts (<see cref="WebApplication.Urls"/> says which).</summary>
    public int Port { get; init; } = 8080;

    /// <summary>When set, every request but <c>/health</c> must carry <c>Authorization: Bearer KEY</c>.</summary>
    public string? ApiKey { get; init; }

    /// <summary>The largest request body accepted, in bytes; a larger one is refused with 413.</summary>
    public long MaxRequestBodyBytes { get; init; } = 8 << 20;

    /// <summary>How long a stopping server lets requests in flight finish before it cancels them.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Where the server reports its own failures (one line each); requests' errors go to their clients.</summary>
    public Action<string>? Log { get; init; }
}

/// <summary>
/// <c>kangaroo serve</c>: an OpenAI-compatible HTTP server (Kestrel) over one model. The host is built bare
/// (no configuration files, environment or logging providers), so nothing but <see cref="ServerOptions"/>
/// changes what it does, and no request names a file.
/// </summary>
public static class KangarooServer
{
    /// <summary>The server, not yet started (<c>StartAsync</c>, or <c>RunAsync</c> until SIGTERM or Ctrl-C).
    /// Stopping it stops listening and lets requests in flight finish within
    /// <see cref="ServerOptions.ShutdownTimeout"/>; the scheduler is the caller's to dispose afterwards.</summary>
    public static WebApplication Create(ServedModel model, IGenerationScheduler scheduler, ServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(scheduler);
        ArgumentNullException.ThrowIfNull(options);
        var address = options.Host == "localhost" ? IPAddress.Loopback
            : IPAddress.TryParse(options.Host, out var ip) ? ip
            : throw new ArgumentException($"--host '{options.Host}' is not an IP address (or localhost)");
        if (options.Port is < 0 or > 65535) throw new ArgumentException($"--port {options.Port} must be from 0 to 65535");
        if (options.ApiKey is { Length: 0 }) throw new ArgumentException("the API key is empty");
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxRequestBodyBytes, 1);

        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ApplicationName = "kangaroo" });
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
            kestrel.Listen(address, options.Port);
        });
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = options.ShutdownTimeout);
        var app = builder.Build();
        var api = new OpenAiApi(model, scheduler, options);
        ((IApplicationBuilder)app).Run(api.Handle);
        return app;
    }
}
