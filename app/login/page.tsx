"use client";
/**
 * Login: username and password. The server's own message is shown as it is
 * (wrong password, locked until …, rate limited). On success the browser
 * goes to `?next=` (a local path only) with a full load, so every page
 * starts from a clean cache under the new session.
 */
import { useMutation } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { clock } from "../_lib/format";
import { safeNext } from "../_lib/safe-next";
import { errorMessage, trpcCode, useTRPC } from "../_lib/trpc";

/** A lock-out message names a UTC instant; say when that is here. */
function LocalTime({ message }: { message: string }) {
  const iso = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z/.exec(message)?.[0];
  if (!iso) return null;
  const at = Date.parse(iso);
  const min = Math.max(0, Math.ceil((at - Date.now()) / 60_000));
  return (
    <span className="alert-hint" data-testid="login-error-local">
      That is {clock(at)} local time (in {min} min).
    </span>
  );
}

export default function LoginPage() {
  const trpc = useTRPC();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const login = useMutation(
    trpc.auth.login.mutationOptions({
      onSuccess: () => {
        const next = safeNext(new URLSearchParams(window.location.search).get("next"), window.location.origin);
        window.location.assign(next);
      },
    }),
  );

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!username || !password) return;
    login.mutate({ username, password });
  };

  const code = login.error ? trpcCode(login.error) : null;
  return (
    <div className="login-page">
      <form className="login-card" onSubmit={submit} data-testid="login-form">
        <div className="login-brand">
          <span className="brand-mark" aria-hidden="true">
            ◆
          </span>
          beamdeck
        </div>
        <p className="login-sub">Sign in to the dashboard</p>
        <label className="field">
          <span>Username</span>
          <input
            name="username"
            data-testid="login-username"
            autoComplete="username"
            // biome-ignore lint/a11y/noAutofocus: the login page has one thing to do, typing the username
            autoFocus
            value={username}
            onChange={(e) => setUsername(e.target.value)}
          />
        </label>
        <label className="field">
          <span>Password</span>
          <input name="password" type="password" data-testid="login-password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} />
        </label>
        {login.error ? (
          <div className={code === "TOO_MANY_REQUESTS" ? "alert alert-warn" : "alert alert-error"} role="alert" data-testid="login-error">
            <span data-testid="login-error-message">{errorMessage(login.error)}</span>
            <LocalTime message={errorMessage(login.error)} />
          </div>
        ) : null}
        <button type="submit" className="btn btn-primary" data-testid="login-submit" disabled={login.isPending || login.isSuccess || !username || !password}>
          {login.isPending || login.isSuccess ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </div>
  );
}
