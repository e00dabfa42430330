// Socket.IO 4.8 peer for aurora-bench: rooms + broadcast, acks on join and publish.
// Usage: node server.js PORT  (0 = any free port; prints "listening on http://ADDR").
const http = require("http");
const { Server } = require("socket.io");

const server = http.createServer();
const io = new Server(server, { transports: ["websocket"], perMessageDeflate: false, serveClient: false });
io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    socket.join(room);
    if (typeof ack === "function") ack();
  });
  socket.on("msg", (room, body, ack) => {
    io.to(room).emit("msg", body);
    if (typeof ack === "function") ack();
  });
});
server.listen(Number(process.argv[2] || 0), "127.0.0.1", () => {
  const { address, port } = server.address();
  console.log(`listening on http://${address}:${port}`);
});
