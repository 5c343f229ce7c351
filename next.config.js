// Minimal on purpose: no runtime config, no NEXT_PUBLIC_* values. The browser
// derives every URL (tRPC over HTTP and WebSocket) from its own location, so
// one build serves any host. tRPC itself is served by server/gateway, not here.
/** @type {import('next').NextConfig} */
const nextConfig = {
  reactStrictMode: true,
  poweredByHeader: false,
};

export default nextConfig;
