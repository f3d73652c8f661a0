// Socket.IO transport of the event log: same origin, path /socket.io, session-cookie auth.
// send() emits "event" and resolves with the server's ack (sent after its DB commit), or
// rejects on timeout / while disconnected, leaving the retry to the outbox.

import { io } from "/static/vendor/socket.io.esm.min.js";

const ACK_TIMEOUT_MS = 10000;

export class EventSocket {
  constructor({ onConnect = () => {}, onStatus = () => {} } = {}) {
    this.onConnect = onConnect;
    this.onStatus = onStatus;
    this.socket = io({ path: "/socket.io", withCredentials: true });
    this.socket.on("connect", () => {
      this.onStatus("connected");
      this.onConnect();
    });
    this.socket.on("disconnect", (reason) => this.onStatus(`disconnected (${reason})`));
    this.socket.on("connect_error", (err) => this.onStatus(`connection error: ${err.message}`));
  }

  get connected() {
    return this.socket.connected;
  }

  send(event) {
    if (!this.socket.connected) return Promise.reject(new Error("not connected"));
    return this.socket.timeout(ACK_TIMEOUT_MS).emitWithAck("event", event);
  }

  close() {
    this.socket.close();
  }
}
