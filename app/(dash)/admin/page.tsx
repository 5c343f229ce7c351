"use client";
/**
 * Administration (admins): users, API tokens, agent tokens, who sees process values. Everyone else
 * gets an explanation; the server refuses these calls for them anyway.
 */
import { useEffect } from "react";
import { RoleRequired } from "../../_components/RoleHint";
import { Users } from "./_parts/Users";
import { AgentTokens, ApiTokens } from "./_parts/Tokens";
import { ProcessValues } from "./_parts/ProcessValues";

export default function AdminPage() {
  useEffect(() => {
    document.title = "Admin · beamdeck";
  }, []);
  return (
    <div className="page admin-page">
      <div className="page-head">
        <h1>Administration</h1>
        <span className="page-meta">every change here is written to the audit log</span>
      </div>
      <RoleRequired need="admin" what="Administration">
        <div className="stack">
          <Users />
          <ApiTokens />
          <AgentTokens />
          <ProcessValues />
        </div>
      </RoleRequired>
    </div>
  );
}
