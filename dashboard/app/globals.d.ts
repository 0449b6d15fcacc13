import type { io as SocketIo } from 'socket.io-client';
import type { default as VegaEmbed } from 'vega-embed';

// The browser bundles index.html loads before the app: vega-embed (with vega and vega-lite) and socket.io's client.
declare global {
  const vegaEmbed: typeof VegaEmbed;
  const io: typeof SocketIo;
}
