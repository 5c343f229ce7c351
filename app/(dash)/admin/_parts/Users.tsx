"use client";
/** Users: add (a generated password is shown once), change role, reset password, disable/enable. */
import { ConfirmButton } from "../../../_components/ConfirmButton";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { OnceSecret } from "../../../_components/OnceSecret";
import { dateTime } from "../../../_lib/format";
import { ROLES, asRole, useRole, type Role } from "../../../_lib/me";
import { errorMessage, useTRPC } from "../../../_lib/trpc";
import { toMs } from "../../../_lib/when";

type Shown = { title: string; value: string; testid: string };

export function Users() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const { name: me } = useRole();
  const users = useQuery(trpc.users.list.queryOptions());
  const [username, setUsername] = useState("");
  const [role, setRole] = useState<Role>("viewer");
  const [password, setPassword] = useState("");
  const [shown, setShown] = useState<Shown | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const refresh = () => void queryClient.invalidateQueries({ queryKey: trpc.users.list.queryKey() });

  const add = useMutation(
    trpc.users.add.mutationOptions({
      onSuccess: (u) => {
        setUsername("");
        setPassword("");
        if (u.password) {
          setShown({ title: `Password for ${u.username} (${u.role})`, value: u.password, testid: "user-created-password" });
          setNote(null);
        } else {
          setShown(null);
          setNote(`${u.username} (${u.role}) added with the password you gave.`);
        }
        refresh();
      },
    }),
  );
  const setRoleM = useMutation(trpc.users.setRole.mutationOptions({ onSettled: refresh, onSuccess: (r) => setNote(`${r.username} is now ${r.role}.`) }));
  const reset = useMutation(
    trpc.users.resetPassword.mutationOptions({
      onSuccess: (r) => {
        if (r.password) setShown({ title: `New password for ${r.username} (every session of theirs has ended)`, value: r.password, testid: "user-reset-password" });
        refresh();
      },
    }),
  );
  const disable = useMutation(trpc.users.setDisabled.mutationOptions({ onSettled: refresh, onSuccess: (r) => setNote(`${r.username} ${r.disabled ? "disabled; their sessions ended" : "enabled"}.`) }));
  const error = add.error ?? setRoleM.error ?? reset.error ?? disable.error;

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!username) return;
    add.mutate({ username, role, ...(password ? { password } : {}) });
  };

  return (
    <div className="panel admin-section" data-testid="admin-users">
      <div className="panel-head">
        <h2>Users</h2>
        <span className="panel-meta">viewer sees everything, changes nothing · operator also runs upgrade steps, handles alerts · admin also manages users, tokens, rules, webhooks</span>
      </div>
      <form className="form-row" onSubmit={submit} data-testid="user-add">
        <label className="inline-field">
          <span>Username</span>
          <input className="ctl" required minLength={2} maxLength={64} pattern="[A-Za-z0-9._@\-]+" value={username} onChange={(e) => setUsername(e.target.value)} data-testid="user-add-username" />
        </label>
        <label className="inline-field">
          <span>Role</span>
          <select className="ctl" value={role} onChange={(e) => setRole(asRole(e.target.value))} data-testid="user-add-role">
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
        <label className="inline-field">
          <span>Password</span>
          <input
            className="ctl"
            type="password"
            autoComplete="new-password"
            placeholder="generated if empty"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            data-testid="user-add-password"
          />
        </label>
        <button type="submit" className="btn btn-primary" disabled={!username || add.isPending} data-testid="user-add-submit">
          {add.isPending ? "Adding…" : "Add user"}
        </button>
      </form>
      {error ? (
        <div className="alert alert-error" data-testid="admin-users-error">
          {errorMessage(error)}
        </div>
      ) : null}
      {note && !error ? (
        <div className="note-ok" data-testid="admin-users-note">
          {note}
        </div>
      ) : null}
      {shown ? <OnceSecret title={shown.title} value={shown.value} testid={shown.testid} onDismiss={() => setShown(null)} /> : null}
      <table className="grid" data-testid="users-table">
        <thead>
          <tr>
            <th>User</th>
            <th>Role</th>
            <th>Status</th>
            <th>Created</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(users.data ?? []).map((u) => {
            const self = u.username === me;
            const locked = toMs(u.lockedUntil);
            return (
              <tr key={u.id} data-testid="user-row" data-username={u.username} data-role={u.role} data-disabled={String(u.disabled)}>
                <td>
                  <strong>{u.username}</strong>
                  {self ? <span className="muted"> (you)</span> : null}
                </td>
                <td>
                  <select
                    className="ctl"
                    value={u.role}
                    disabled={setRoleM.isPending}
                    onChange={(e) => setRoleM.mutate({ username: u.username, role: asRole(e.target.value) })}
                    data-testid="user-role-select"
                    aria-label={`Role of ${u.username}`}
                  >
                    {ROLES.map((r) => (
                      <option key={r} value={r}>
                        {r}
                      </option>
                    ))}
                  </select>
                </td>
                <td data-testid="user-status">
                  {u.disabled ? (
                    <span className="status status-down">disabled</span>
                  ) : locked ? (
                    <span className="status status-warn" title="too many failed logins; a password reset or enabling unlocks">
                      login delayed until {dateTime(locked)}
                    </span>
                  ) : (
                    <span className="status status-up">active</span>
                  )}
                </td>
                <td className="nowrap">
                  {dateTime(toMs(u.createdAt) ?? 0)} <span className="muted">by {u.createdBy ?? "?"}</span>
                </td>
                <td className="actions-cell">
                  <span className="row-actions">
                    <ConfirmButton
                      testid="user-reset"
                      pending={reset.isPending}
                      question={`Reset ${u.username}'s password? A new one is generated and shown once; all of their sessions end.`}
                      onConfirm={() => reset.mutate({ username: u.username })}
                    >
                      Reset password
                    </ConfirmButton>
                    {self ? null : (
                      <ConfirmButton
                        testid="user-disable"
                        pending={disable.isPending}
                        question={u.disabled ? null : `Disable ${u.username}? Their sessions end and their API tokens stop working.`}
                        onConfirm={() => disable.mutate({ username: u.username, disabled: !u.disabled })}
                      >
                        {u.disabled ? "Enable" : "Disable"}
                      </ConfirmButton>
                    )}
                  </span>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
