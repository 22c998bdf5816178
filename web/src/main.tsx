import "./style.css";
import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { signal } from "@preact/signals";
import { fetchIdentity, setToken, token } from "./api.js";
import { Notice } from "./components.js";
import { ClusterPage } from "./pages/cluster.js";
import { LabelsPage } from "./pages/labels.js";
import { Overview } from "./pages/overview.js";
import { PoolsPage } from "./pages/pools.js";
import { ProjectsPage } from "./pages/projects.js";
import { href, identity, route, type Route } from "./session.js";
import { feed, feedError, loaded, revision, runFeed } from "./store.js";

/** "checking" until /console/identity answered; "signed-out" when a token is needed. */
const phase = signal<"checking" | "signed-out" | "signed-in">("checking");
const signInError = signal("");

async function check(candidate: string | null): Promise<boolean> {
  try {
    identity.value = await fetchIdentity(candidate);
    if (identity.value.authEnabled) setToken(candidate);
    phase.value = "signed-in";
    signInError.value = "";
    return true;
  } catch (error) {
    identity.value = null;
    phase.value = "signed-out";
    if (candidate) signInError.value = (error as Error).message;
    return false;
  }
}

function signOut(message = "") {
  setToken(null);
  identity.value = null;
  signInError.value = message;
  phase.value = "signed-out";
}

function SignIn() {
  const [value, setValue] = useState("");
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);
  return (
    <main id="main" class="sign-in">
      <h1>clusterplane console</h1>
      <form
        onSubmit={async (event) => {
          event.preventDefault();
          await check(value.trim());
        }}
      >
        <label for="token">Access token</label>
        <p id="token-help" class="muted">
          Paste a token of the server's tokens file (role admin, viewer or router). It is kept for this tab only (sessionStorage) and sent as a bearer token.
        </p>
        <input
          id="token"
          ref={input}
          type="password"
          autoComplete="off"
          required
          aria-describedby="token-help"
          value={value}
          onInput={(e) => setValue((e.target as HTMLInputElement).value)}
        />
        <button type="submit" class="primary">
          Sign in
        </button>
        {signInError.value ? <Notice kind="error">{signInError.value}</Notice> : null}
      </form>
    </main>
  );
}

const PAGES: [Route["page"], string][] = [
  ["overview", "Overview"],
  ["labels", "Labels and routing"],
  ["pools", "Pools"],
  ["projects", "Projects"],
];

function FeedStatus() {
  const state = feed.value;
  const text =
    state === "live" ? `Live · revision ${revision.value}` : state === "connecting" ? "Connecting…" : state === "reconnecting" ? "Reconnecting…" : "Refused";
  return (
    <span class={`feed feed-${state}`} role="status" data-feed={state} title={feedError.value || text}>
      <span aria-hidden="true" class="dot" />
      {text}
    </span>
  );
}

function Page() {
  const current = route.value;
  if (!loaded.value) {
    return feed.value === "refused" ? <Notice kind="error">{feedError.value}</Notice> : <p class="muted">Loading the state of the control plane…</p>;
  }
  switch (current.page) {
    case "cluster":
      return <ClusterPage name={current.name} />;
    case "labels":
      return <LabelsPage />;
    case "pools":
      return <PoolsPage />;
    case "projects":
      return <ProjectsPage />;
    default:
      return <Overview />;
  }
}

function Console() {
  useEffect(() => {
    const stop = new AbortController();
    void runFeed(stop.signal, () => signOut("The server no longer accepts this token; sign in again."));
    return () => stop.abort();
  }, []);
  const current = route.value.page === "cluster" ? "overview" : route.value.page;
  const who = identity.value;
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={href("overview")}>
          clusterplane
        </a>
        <nav aria-label="Pages">
          <ul>
            {PAGES.map(([page, title]) => (
              <li key={page}>
                <a href={href(page)} aria-current={current === page ? "page" : undefined}>
                  {title}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <FeedStatus />
          <span data-testid="identity">
            {who?.authEnabled ? `${who.name} (${who.role ?? "no role"})` : "auth off (admin)"}
          </span>
          {who?.authEnabled ? (
            <button type="button" onClick={() => signOut()}>
              Sign out
            </button>
          ) : null}
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {feed.value !== "live" && loaded.value && feedError.value ? <Notice kind="info">{feedError.value}; retrying.</Notice> : null}
        <Page />
      </main>
    </>
  );
}

function App() {
  useEffect(() => {
    void check(token.value);
  }, []);
  if (phase.value === "checking") return <p class="muted">Connecting…</p>;
  if (phase.value === "signed-out") return <SignIn />;
  return <Console />;
}

render(<App />, document.getElementById("app")!);
