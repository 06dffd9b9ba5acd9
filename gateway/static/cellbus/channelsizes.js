  // ---- Channel: messages too big for the gateway ------------------------------------------

  // Methods of Channel (channel.js). The gateway reads WebSocket messages up to a size (its
  // subscribe_reply says it, max_message, with --max-input, max_input) and closes a socket
  // that sends a longer one with 1009. Such a message fails at once, with words that say
  // so, and is never sent again: sent again after each reconnect it closed every socket the
  // page opened (a reconnect every ~0.3 s), and no other request of the page got through.

  /** RFC 6455 7.4.1: the message was too big for the other side to process. */
  const MESSAGE_TOO_BIG = 1009;
  /** Sockets that may close with a request sent on them and not answered before the
   * request fails: one that ends every socket it goes on (past a limit
   * the gateway did not say, or a proxy's) is not sent for ever. */
  const MAX_CLOSES = 4;

  /** `text`'s size in UTF-8, as the gateway counts a message's bytes. */
  function utf8Size(text) {
    return new TextEncoder().encode(text).length;
  }

  Object.assign(Channel.prototype, {
    /** The limits a subscribe_reply says (`content`), kept for the next messages. */
    _noteLimits(content) {
      if (Number.isInteger(content.max_message)) this.maxMessage = content.max_message;
      if (Number.isInteger(content.max_input)) this.maxInput = content.max_input;
    },

    /** Whether `text`, the JSON of a request, is past the gateway's largest message. */
    _tooBig(text) {
      // A UTF-16 unit is at most 3 bytes of UTF-8: count the bytes only when it matters.
      return Number.isInteger(this.maxMessage) && text.length * 3 > this.maxMessage
        && utf8Size(text) > this.maxMessage;
    },

    /** What the cell says of a request too big to send. */
    _tooBigError() {
      return Number.isInteger(this.maxInput)
        ? "the input is too big: it is over the limit of " + this.maxInput + " bytes"
        : "the input is too big: the server closed the connection for it (message too big)";
    },

    /** The socket `ws` was closed with `code`: after a 1009, the request it could not read
     * fails. It is one sent on that socket and not answered: those past the largest message
     * if the gateway said it, else the largest (one more 1009 fails the next, if any). A
     * request that MAX_CLOSES sockets closed before answering it fails too. */
    _closedFor(ws, code) {
      const unanswered = Array.from(this.requests.entries()).filter(
        ([, record]) => record.sent && !record.accepted && record.ws === ws);
      if (code === MESSAGE_TOO_BIG && unanswered.length) {
        let culprits = unanswered.filter(([, r]) => this._tooBig(JSON.stringify(r.msg)));
        if (!culprits.length) {
          culprits = [unanswered.reduce((a, b) => b[1].length > a[1].length ? b : a)];
        }
        for (const [msgId, record] of culprits) this._fail(record, msgId, this._tooBigError());
      }
      for (const [msgId, record] of unanswered) {
        record.closes = (record.closes || 0) + 1;
        if (this.requests.get(msgId) === record && record.closes >= MAX_CLOSES) {
          this._fail(record, msgId, "the connection closed each of the " + MAX_CLOSES
            + " times it was sent, before any answer (is the input too big?)");
        }
      }
    },

    /** `record`, too big to send, fails once its sender has its msg_id (request() returns
     * it after sending). */
    _failSoon(record) {
      const msgId = record.msg.header.msg_id;
      Promise.resolve().then(() => {
        if (this.requests.get(msgId) === record) this._fail(record, msgId, this._tooBigError());
      });
    },

    /** The request `msgId` (`record`) failed for `error`: it goes, and its cell says why. */
    _fail(record, msgId, error) {
      this.requests.delete(msgId);
      if (record.resolve) record.resolve(null);
      if (record.kind === "execute_request") record.cell._refused(msgId, error);
      if (record.kind === "interact_request") {
        record.cell._interactRefused(record.msg.content.interact_id, error);
      }
    },
  });
