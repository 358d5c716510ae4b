import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import {
  ConvexProvider,
  ConvexReactClient,
  useMutation,
  usePaginatedQuery,
  useQuery,
} from "convex/react";
import { ConvexError } from "convex/values";
// Written by `convection dev` (or `convection codegen`) from the Python functions.
import { api } from "../../convex/_generated/api";
import "./style.css";

const convex = new ConvexReactClient(
  import.meta.env.VITE_CONVEX_URL || "http://127.0.0.1:3210",
);

function initialName() {
  const fromUrl = new URLSearchParams(window.location.search).get("name");
  if (fromUrl) return fromUrl;
  const saved = window.localStorage.getItem("chat-name");
  if (saved) return saved;
  return `guest-${Math.floor(Math.random() * 10000)}`;
}

function errorText(error) {
  if (error instanceof ConvexError) return error.data?.message ?? String(error.data);
  return "Something went wrong; see the console.";
}

function Channels({ selected, onSelect }) {
  const channels = useQuery(api.channels.list);
  const create = useMutation(api.channels.create);
  const [name, setName] = useState("");
  const [error, setError] = useState(null);

  useEffect(() => {
    if (selected === null && channels && channels.length > 0) onSelect(channels[0]._id);
  }, [channels, selected, onSelect]);

  async function submit(event) {
    event.preventDefault();
    setError(null);
    try {
      const id = await create({ name });
      setName("");
      onSelect(id);
    } catch (e) {
      setError(errorText(e));
    }
  }

  return (
    <nav className="channels">
      <h2>Channels</h2>
      {channels === undefined ? (
        <p className="muted">Loading…</p>
      ) : (
        <ul>
          {channels.map((c) => (
            <li key={c._id}>
              <button
                data-testid="channel"
                className={c._id === selected ? "active" : ""}
                onClick={() => onSelect(c._id)}
              >
                #{c.name}
              </button>
            </li>
          ))}
        </ul>
      )}
      <form onSubmit={submit}>
        <input
          data-testid="new-channel"
          value={name}
          onChange={(e) => setName(e.target.value)}
          placeholder="new channel"
        />
        <button type="submit">Create</button>
      </form>
      {error && <p className="error">{error}</p>}
    </nav>
  );
}

function Messages({ channel, author }) {
  const { results, status, loadMore } = usePaginatedQuery(
    api.messages.list,
    { channel },
    { initialNumItems: 10 },
  );
  const send = useMutation(api.messages.send);
  const [body, setBody] = useState("");
  const [error, setError] = useState(null);

  async function submit(event) {
    event.preventDefault();
    setError(null);
    const text = body;
    setBody("");
    try {
      await send({ channel, author, body: text });
    } catch (e) {
      setBody(text);
      setError(errorText(e));
    }
  }

  // The list comes newest first; a chat shows the newest at the bottom.
  const shown = [...results].reverse();
  return (
    <main className="messages">
      {status === "CanLoadMore" && (
        <button className="more" onClick={() => loadMore(10)}>
          Load older messages
        </button>
      )}
      {status === "LoadingFirstPage" && <p className="muted">Loading…</p>}
      <ol>
        {shown.map((m) => (
          <li key={m._id} data-testid="message">
            <strong>{m.author}</strong> <span data-testid="message-body">{m.body}</span>
          </li>
        ))}
      </ol>
      <form onSubmit={submit}>
        <input
          data-testid="body"
          value={body}
          onChange={(e) => setBody(e.target.value)}
          placeholder={`Message as ${author}`}
        />
        <button type="submit" data-testid="send" disabled={!body.trim()}>
          Send
        </button>
      </form>
      {error && <p className="error">{error}</p>}
    </main>
  );
}

function App() {
  const [author, setAuthor] = useState(initialName);
  const [channel, setChannel] = useState(null);

  useEffect(() => {
    window.localStorage.setItem("chat-name", author);
  }, [author]);

  return (
    <div className="app">
      <header>
        <h1>convection chat</h1>
        <label>
          Your name{" "}
          <input
            data-testid="author"
            value={author}
            onChange={(e) => setAuthor(e.target.value)}
          />
        </label>
      </header>
      <div className="body">
        <Channels selected={channel} onSelect={setChannel} />
        {channel === null ? (
          <main className="messages muted">Create a channel to start chatting.</main>
        ) : (
          <Messages key={channel} channel={channel} author={author} />
        )}
      </div>
    </div>
  );
}

createRoot(document.getElementById("root")).render(
  <StrictMode>
    <ConvexProvider client={convex}>
      <App />
    </ConvexProvider>
  </StrictMode>,
);
