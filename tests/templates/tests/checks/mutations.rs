//! Each test breaks an in-memory copy of the real templates the way drift would, and asserts
//! that the checker reports exactly that breakage (and its direct consequences).

use serde_json::json;

use super::{assert_exactly, at, check_after};

const HANDOVER: &str = "templates/workflows/secret-handover.yaml";
const BATCH: &str = "templates/workflows/secret-handover-batch.yaml";
const ROTATION: &str = "templates/workflows/secret-rotation.yaml";
const PUSH: &str = "templates/workflows/push-internal-secrets.yaml";
const TRIGGER: &str = "templates/events/bootstrap-trigger.yaml";

// secret-handover's templates: handover, hand-over-one, read-bootstrap, write-vault, mark-consumed.
const WRITE_VAULT: &str = "/spec/templates/3/container";
const MARK_CONSUMED: &str = "/spec/templates/4/container";

#[test]
fn a_misspelt_flag() {
    let found = check_after(|t| {
        let wf = t.doc_mut("WorkflowTemplate", "secret-handover");
        *at(wf, &format!("{WRITE_VAULT}/args/1")) =
            json!("--path-prefx={{workflow.parameters.path-prefix}}");
    });
    assert_exactly(
        &found,
        &[(
            HANDOVER,
            "spec.templates[3].container.args[1]",
            "unknown flag --path-prefx: write-vault has no such option",
        )],
    );
}

#[test]
fn a_flag_of_another_binary() {
    let found = check_after(|t| {
        let wf = t.doc_mut("WorkflowTemplate", "secret-rotation");
        at(wf, "/spec/templates/0/container/args")
            .as_array_mut()
            .unwrap()
            .push(json!("--batch-size=10"));
    });
    assert_exactly(
        &found,
        &[(
            ROTATION,
            "spec.templates[0].container.args[12]",
            "unknown flag --batch-size: rotate",
        )],
    );
}

#[test]
fn a_flag_with_its_value_in_the_next_argument() {
    let found = check_after(|t| {
        let args = at(
            t.doc_mut("WorkflowTemplate", "secret-rotation"),
            "/spec/templates/0/container/args",
        );
        args.as_array_mut()
            .unwrap()
            .extend([json!("--keep-for"), json!("a month")]);
    });
    assert_exactly(
        &found,
        &[(
            ROTATION,
            "spec.templates[0].container.args[12]",
            "rotate refuses --keep-for=\"a month\"",
        )],
    );
}

#[test]
fn an_undeclared_workflow_parameter() {
    let found = check_after(|t| {
        let wf = t.doc_mut("WorkflowTemplate", "secret-rotation");
        *at(wf, "/spec/templates/0/container/env/4/value") =
            json!("{{workflow.parameters.kv-mnt}}");
    });
    assert_exactly(
        &found,
        &[(
            ROTATION,
            "spec.templates[0].container.env[4].value",
            "{{workflow.parameters.kv-mnt}} is not declared",
        )],
    );
}

#[test]
fn an_undeclared_input_parameter() {
    let found = check_after(|t| {
        let wf = t.doc_mut("WorkflowTemplate", "secret-handover");
        *at(wf, &format!("{MARK_CONSUMED}/args/1")) =
            json!("--vault-version={{inputs.parameters.vault-versio}}");
    });
    assert_exactly(
        &found,
        &[(
            HANDOVER,
            "spec.templates[4].container.args[1]",
            "{{inputs.parameters.vault-versio}} is not declared in this template's inputs",
        )],
    );
}

#[test]
fn an_undeclared_step_output() {
    let found = check_after(|t| {
        let wf = t.doc_mut("WorkflowTemplate", "secret-handover");
        *at(
            wf,
            "/spec/templates/1/steps/1/0/arguments/parameters/1/value",
        ) = json!("{{steps.write.outputs.parameters.vault-versoin}}");
    });
    assert_exactly(
        &found,
        &[(
            HANDOVER,
            "spec.templates[1].steps[1][0].arguments.parameters[1].value",
            "template write-vault declares no output parameter \"vault-versoin\"",
        )],
    );
}

#[test]
fn a_step_output_used_before_the_step_ran() {
    let found = check_after(|t| {
        let wf = t.doc_mut("WorkflowTemplate", "secret-handover");
        *at(
            wf,
            "/spec/templates/1/steps/0/0/arguments/parameters/0/value",
        ) = json!("{{steps.consume.outputs.parameters.outcome}}");
    });
    assert_exactly(
        &found,
        &[(
            HANDOVER,
            "spec.templates[1].steps[0][0].arguments.parameters[0].value",
            "\"consume\" has not run yet",
        )],
    );
}

#[test]
fn a_missing_template_and_a_missing_input() {
    let found = check_after(|t| {
        let wf = t.doc_mut("WorkflowTemplate", "secret-handover");
        *at(wf, "/spec/templates/0/steps/0/0/template") = json!("read-bootstap");
        at(wf, "/spec/templates/1/steps/1/0/arguments/parameters")
            .as_array_mut()
            .unwrap()
            .remove(1);
    });
    assert_exactly(
        &found,
        &[
            (
                HANDOVER,
                "spec.templates[0].steps[0][0].template",
                "no template named \"read-bootstap\"",
            ),
            (
                HANDOVER,
                "spec.templates[1].steps[1][0].arguments.parameters",
                "needs input parameter \"vault-version\"",
            ),
        ],
    );
}

#[test]
fn an_unknown_argo_variable() {
    let found = check_after(|t| {
        let wf = t.doc_mut("WorkflowTemplate", "push-internal-secrets");
        *at(wf, "/spec/templates/0/container/args/3") = json!("--workflow-name={{workflow.nmae}}");
    });
    assert_exactly(
        &found,
        &[(
            PUSH,
            "spec.templates[0].container.args[3]",
            "{{workflow.nmae}} is not an Argo variable",
        )],
    );
}

#[test]
fn a_v3_schedule_in_a_cron_workflow() {
    let found = check_after(|t| {
        let cron = t.doc_mut("CronWorkflow", "secret-rotation");
        at(cron, "/spec")
            .as_object_mut()
            .unwrap()
            .insert("schedule".into(), json!("0 3 * * 0"));
    });
    assert_exactly(
        &found,
        &[(
            ROTATION,
            "spec.schedule",
            "unknown field \"schedule\": the full CRD",
        )],
    );
}

#[test]
fn a_v3_schedule_instead_of_schedules() {
    let found = check_after(|t| {
        let spec = at(t.doc_mut("CronWorkflow", "secret-rotation"), "/spec")
            .as_object_mut()
            .unwrap();
        spec.remove("schedules");
        spec.insert("schedule".into(), json!("0 3 * * 0"));
    });
    assert_exactly(
        &found,
        &[
            (ROTATION, "spec.schedule", "unknown field \"schedule\""),
            (ROTATION, "spec", "\"schedules\" is a required property"),
        ],
    );
}

#[test]
fn a_schedule_with_seconds() {
    let found = check_after(|t| {
        *at(
            t.doc_mut("CronWorkflow", "secret-rotation"),
            "/spec/schedules/0",
        ) = json!("0 0 3 * * 0");
    });
    assert_exactly(&found, &[(ROTATION, "spec.schedules[0]", "does not match")]);
}

#[test]
fn a_v3_synchronization_mutex() {
    let found = check_after(|t| {
        let sync = at(
            t.doc_mut("WorkflowTemplate", "secret-handover"),
            "/spec/templates/1/synchronization",
        );
        let name = sync["mutexes"][0]["name"].clone();
        *sync = json!({ "mutex": { "name": name } });
    });
    assert_exactly(
        &found,
        &[(
            HANDOVER,
            "spec.templates[1].synchronization.mutex",
            "unknown field \"mutex\": the full CRD",
        )],
    );
}

#[test]
fn an_unknown_field_in_a_container() {
    let found = check_after(|t| {
        let c = at(
            t.doc_mut("WorkflowTemplate", "secret-handover-batch"),
            "/spec/templates/2/containerSet/containers/0",
        );
        c.as_object_mut()
            .unwrap()
            .insert("imagePullPolice".into(), json!("Always"));
    });
    assert_exactly(
        &found,
        &[(
            BATCH,
            "spec.templates[2].containerSet.containers[0].imagePullPolice",
            "unknown field \"imagePullPolice\"",
        )],
    );
}

#[test]
fn a_retry_limit_may_be_an_integer_but_not_a_boolean() {
    let found = check_after(|t| {
        *at(
            t.doc_mut("WorkflowTemplate", "secret-rotation"),
            "/spec/templates/0/retryStrategy/limit",
        ) = json!(4);
    });
    assert_exactly(&found, &[]);
    let found = check_after(|t| {
        *at(
            t.doc_mut("WorkflowTemplate", "secret-rotation"),
            "/spec/templates/0/retryStrategy/limit",
        ) = json!(true);
    });
    assert_exactly(
        &found,
        &[(
            ROTATION,
            "spec.templates[0].retryStrategy.limit",
            "full CRD",
        )],
    );
}

#[test]
fn a_deadline_on_a_steps_template() {
    let found = check_after(|t| {
        let tmpl = at(
            t.doc_mut("WorkflowTemplate", "secret-handover"),
            "/spec/templates/0",
        );
        tmpl.as_object_mut()
            .unwrap()
            .insert("activeDeadlineSeconds".into(), json!(60));
    });
    assert_exactly(
        &found,
        &[(
            HANDOVER,
            "spec.templates[0].activeDeadlineSeconds",
            "only allowed on leaf templates",
        )],
    );
}

#[test]
fn an_artifact_with_two_locations() {
    let found = check_after(|t| {
        let a = at(
            t.doc_mut("WorkflowTemplate", "secret-rotation"),
            "/spec/templates/0/inputs/artifacts/0",
        );
        a.as_object_mut().unwrap().insert(
            "http".into(),
            json!({"url": "https://example.com/paths.json"}),
        );
    });
    assert_exactly(
        &found,
        &[(
            ROTATION,
            "spec.templates[0].inputs.artifacts[0]",
            "at most one artifact location, not [\"http\", \"raw\"]",
        )],
    );
}

#[test]
fn a_role_binding_to_a_missing_role() {
    let found = check_after(|t| {
        *at(
            t.doc_mut("RoleBinding", "secops-bootstrap-sensor"),
            "/roleRef/name",
        ) = json!("secops-bootstrap-sensr");
    });
    assert_exactly(
        &found,
        &[
            (
                TRIGGER,
                "roleRef.name",
                "no Role \"secops-bootstrap-sensr\" in namespace secops",
            ),
            (
                TRIGGER,
                "metadata.name",
                "Role secops-bootstrap-sensor is bound by no RoleBinding",
            ),
        ],
    );
}

#[test]
fn a_step_service_account_without_the_executor_role() {
    let found = check_after(|t| {
        let subjects = at(t.doc_mut("RoleBinding", "secops-executor"), "/subjects");
        subjects
            .as_array_mut()
            .unwrap()
            .retain(|s| s["name"] != "secops-rotate");
    });
    assert_exactly(
        &found,
        &[(ROTATION, "spec.templates[0]", "ServiceAccount secops-rotate is bound to no Role granting create and patch on workflowtaskresults")],
    );
}

#[test]
fn a_role_binding_to_a_missing_service_account() {
    let found = check_after(|t| {
        *at(
            t.doc_mut("RoleBinding", "secops-rotate"),
            "/subjects/0/namespace",
        ) = json!("default");
    });
    assert_exactly(
        &found,
        &[
            (
                "templates/targets/apps/rolebindings.yaml",
                "subjects[0].name",
                "no ServiceAccount \"secops-rotate\" in namespace default",
            ),
            // ... and a namespace the settings knob would not move.
            (
                "templates/targets/apps/rolebindings.yaml",
                "subjects[0].namespace",
                "may only be the workflow namespace \"secops\"",
            ),
        ],
    );
}

#[test]
fn a_missing_service_account() {
    let found = check_after(|t| {
        *at(
            t.doc_mut("WorkflowTemplate", "secret-rotation"),
            "/spec/serviceAccountName",
        ) = json!("secops-rotat");
    });
    assert_exactly(
        &found,
        &[(
            ROTATION,
            "spec.serviceAccountName",
            "no ServiceAccount \"secops-rotat\" in namespace secops",
        )],
    );
}

#[test]
fn an_unknown_field_in_a_core_object() {
    let found = check_after(|t| {
        let rule = at(t.doc_mut("Role", "secops-executor"), "/rules/0");
        rule.as_object_mut()
            .unwrap()
            .insert("verb".into(), json!(["get"]));
    });
    assert_exactly(
        &found,
        &[(
            "templates/rbac/executor.yaml",
            "rules[0].verb",
            "unknown field \"verb\"",
        )],
    );
}

#[test]
fn an_unknown_field_in_metadata() {
    let found = check_after(|t| {
        let meta = at(
            t.doc_mut("WorkflowTemplate", "push-internal-secrets"),
            "/metadata",
        );
        meta.as_object_mut()
            .unwrap()
            .insert("label".into(), json!({"a": "b"}));
    });
    assert_exactly(
        &found,
        &[(PUSH, "metadata.label", "unknown field \"label\"")],
    );
}

#[test]
fn a_wrong_image_name() {
    let found = check_after(|t| {
        let wf = t.doc_mut("WorkflowTemplate", "secret-handover");
        *at(wf, &format!("{WRITE_VAULT}/image")) = json!("ghcr.io/secops/write-vautl:0.1.0");
    });
    assert_exactly(
        &found,
        &[
            (HANDOVER, "spec.templates[3].container.image", "is not ghcr.io/secops/<step>:<tag> for a step binary"),
            (HANDOVER, "spec.templates[3].container.image", "image \"ghcr.io/secops/write-vautl\" is not listed in the images knob of templates/kustomization.yaml (its components: templates/settings/kustomization.yaml)"),
        ],
    );
}

#[test]
fn a_command_that_is_not_the_binary() {
    let found = check_after(|t| {
        *at(
            t.doc_mut("WorkflowTemplate", "secret-handover"),
            &format!("{WRITE_VAULT}/command"),
        ) = json!(["/bin/sh", "-c", "/write-vault"]);
    });
    assert_exactly(
        &found,
        &[(
            HANDOVER,
            "spec.templates[3].container.command",
            "command must be [/write-vault]",
        )],
    );
}

#[test]
fn an_environment_variable_the_binary_does_not_read() {
    let found = check_after(|t| {
        let c = at(
            t.doc_mut("WorkflowTemplate", "secret-handover"),
            "/spec/templates/2/container",
        );
        c.as_object_mut().unwrap().insert(
            "env".into(),
            json!([{"name": "VAULT_ADDR", "value": "https://x"}]),
        );
    });
    assert_exactly(
        &found,
        &[(
            HANDOVER,
            "spec.templates[2].container.env[0].name",
            "read-bootstrap does not read the environment variable VAULT_ADDR",
        )],
    );
}

#[test]
fn a_required_flag_that_is_not_given() {
    let found = check_after(|t| {
        let args = at(
            t.doc_mut("WorkflowTemplate", "secret-handover"),
            &format!("{MARK_CONSUMED}/args"),
        );
        args.as_array_mut().unwrap().remove(2);
    });
    assert_exactly(
        &found,
        &[(
            HANDOVER,
            "spec.templates[4].container",
            "mark-consumed requires --mode (or env SECOPS_CONSUME_MODE)",
        )],
    );
}

#[test]
fn a_parameter_default_or_enum_value_the_binary_refuses() {
    let found = check_after(|t| {
        let params = at(
            t.doc_mut("WorkflowTemplate", "secret-rotation"),
            "/spec/arguments/parameters",
        );
        *at(params, "/4/value") = json!("an hour");
    });
    assert_exactly(
        &found,
        &[(
            ROTATION,
            "spec.templates[0].container.args[4]",
            "rotate refuses --grace=\"an hour\" (the default of workflow parameter grace)",
        )],
    );
    let found = check_after(|t| {
        let params = at(
            t.doc_mut("WorkflowTemplate", "secret-handover"),
            "/spec/arguments/parameters",
        );
        at(params, "/4/enum")
            .as_array_mut()
            .unwrap()
            .push(json!("purge"));
    });
    // read-bootstrap takes the consume mode too (it refuses modes that cannot hold).
    assert_exactly(
        &found,
        &[
            (HANDOVER, "spec.templates[2].container.args[6]", "read-bootstrap refuses --consume-mode=\"purge\" (an enum value of workflow parameter consume-mode)"),
            (HANDOVER, "spec.templates[4].container.args[2]", "mark-consumed refuses --mode=\"purge\" (an enum value of workflow parameter consume-mode)"),
        ],
    );
}

#[test]
fn a_vault_role_without_role_and_policy_files() {
    let found = check_after(|t| {
        *at(
            t.doc_mut("WorkflowTemplate", "push-internal-secrets"),
            "/spec/templates/0/container/env/3/value",
        ) = json!("secops-pusher");
    });
    assert_exactly(
        &found,
        &[
            (
                PUSH,
                "spec.templates[0].container.env[3].value",
                "no templates/vault/roles/secops-pusher.json",
            ),
            (
                PUSH,
                "spec.templates[0].container.env[3].value",
                "no templates/vault/policies/secops-pusher.hcl",
            ),
            (
                "templates/vault/roles/secops-push-secret.json",
                "",
                "Vault role secops-push-secret is used by no step",
            ),
        ],
    );
}

#[test]
fn a_vault_role_that_does_not_bind_the_pods_service_account() {
    let found = check_after(|t| {
        t.vault_roles.get_mut("secops-rotate").unwrap().content["bound_service_account_names"] =
            json!(["secops-push-secret"]);
    });
    assert_exactly(
        &found,
        &[(
            ROTATION,
            "spec.templates[0].container.env[3].value",
            "Vault role secops-rotate does not bind ServiceAccount secops-rotate",
        )],
    );
}

#[test]
fn a_vault_role_granting_a_missing_policy() {
    let found = check_after(|t| {
        t.vault_roles
            .get_mut("secops-mark-consumed")
            .unwrap()
            .content["token_policies"] = json!(["secops-mark-consume"]);
    });
    assert_exactly(
        &found,
        &[
            (
                "templates/vault/roles/secops-mark-consumed.json",
                "token_policies[0]",
                "no templates/vault/policies/secops-mark-consume.hcl",
            ),
            (
                "templates/vault/policies/secops-mark-consumed.hcl",
                "",
                "policy secops-mark-consumed is granted by no role",
            ),
        ],
    );
}

#[test]
fn a_vault_role_bound_to_a_missing_service_account() {
    let found = check_after(|t| {
        t.vault_roles.get_mut("secops-eso-reader").unwrap().content
            ["bound_service_account_namespaces"] = json!(["eso"]);
    });
    assert_exactly(
        &found,
        &[
            (
                "templates/eso/cluster-secret-store.yaml",
                "spec.provider.vault.auth.kubernetes.serviceAccountRef",
                "does not bind ServiceAccount external-secrets/external-secrets",
            ),
            (
                "templates/vault/roles/secops-eso-reader.json",
                "bound_service_account_names[0]",
                "no ServiceAccount external-secrets in namespace(s) eso",
            ),
        ],
    );
}

#[test]
fn an_invalid_vault_policy() {
    let found = check_after(|t| {
        let p = &mut t
            .vault_policies
            .get_mut("secops-write-vault")
            .unwrap()
            .content;
        *p = p.replace("\"create\", \"read\"", "\"create\", \"reed\"");
    });
    assert_exactly(
        &found,
        &[(
            "templates/vault/policies/secops-write-vault.hcl",
            "line 5",
            "\"reed\" is not a Vault capability",
        )],
    );
}

#[test]
fn a_cron_workflow_setting_an_undeclared_parameter() {
    let found = check_after(|t| {
        let ws = at(
            t.doc_mut("CronWorkflow", "push-internal-secrets"),
            "/spec/workflowSpec",
        );
        ws.as_object_mut().unwrap().insert(
            "arguments".into(),
            json!({"parameters": [{"name": "namespace", "value": "x"}]}),
        );
    });
    assert_exactly(
        &found,
        &[(
            PUSH,
            "spec.workflowSpec.arguments.parameters[0].name",
            "parameter \"namespace\" is not declared by WorkflowTemplate push-internal-secrets",
        )],
    );
}

#[test]
fn a_cron_workflow_referencing_a_missing_template() {
    let found = check_after(|t| {
        *at(
            t.doc_mut("CronWorkflow", "secret-rotation"),
            "/spec/workflowSpec/workflowTemplateRef/name",
        ) = json!("secret-rotate");
    });
    assert_exactly(
        &found,
        &[(
            ROTATION,
            "spec.workflowSpec.workflowTemplateRef.name",
            "no WorkflowTemplate named \"secret-rotate\"",
        )],
    );
}

#[test]
fn a_sensor_passing_the_event_body() {
    let found = check_after(|t| {
        let sensor = t.doc_mut("Sensor", "bootstrap-handover");
        *at(
            sensor,
            "/spec/triggers/0/template/argoWorkflow/parameters/1/src/dataKey",
        ) = json!("body");
    });
    assert_exactly(
        &found,
        &[(
            TRIGGER,
            "spec.triggers[0].template.argoWorkflow.parameters[1].src",
            "dataKey \"body\" passes on more than a metadata field",
        )],
    );
}

#[test]
fn a_sensor_parameter_without_a_data_key() {
    let found = check_after(|t| {
        let src = at(
            t.doc_mut("Sensor", "bootstrap-handover"),
            "/spec/triggers/0/template/argoWorkflow/parameters/0/src",
        );
        src.as_object_mut().unwrap().remove("dataKey");
    });
    assert_exactly(
        &found,
        &[(
            TRIGGER,
            "spec.triggers[0].template.argoWorkflow.parameters[0].src",
            "passes on the whole event",
        )],
    );
}

#[test]
fn a_sensor_destination_past_the_arguments() {
    let found = check_after(|t| {
        let sensor = t.doc_mut("Sensor", "bootstrap-handover");
        *at(
            sensor,
            "/spec/triggers/0/template/argoWorkflow/parameters/1/dest",
        ) = json!("spec.arguments.parameters.3.value");
    });
    assert_exactly(
        &found,
        &[(
            TRIGGER,
            "spec.triggers[0].template.argoWorkflow.parameters[1].dest",
            "points at argument 3, but the Workflow declares 3 argument(s)",
        )],
    );
}

#[test]
fn a_sensor_submitting_a_missing_template_or_argument() {
    let found = check_after(|t| {
        let wf = at(
            t.doc_mut("Sensor", "bootstrap-handover"),
            "/spec/triggers/0/template/argoWorkflow/source/resource/spec",
        );
        *at(wf, "/workflowTemplateRef/name") = json!("secret-handover-one");
    });
    assert_exactly(
        &found,
        &[(
            TRIGGER,
            "spec.triggers[0].template.argoWorkflow.source.resource.spec.workflowTemplateRef.name",
            "no WorkflowTemplate named \"secret-handover-one\"",
        )],
    );
    let found = check_after(|t| {
        let wf = at(
            t.doc_mut("Sensor", "bootstrap-handover"),
            "/spec/triggers/0/template/argoWorkflow/source/resource/spec",
        );
        *at(wf, "/arguments/parameters/2/name") = json!("name");
    });
    assert_exactly(
        &found,
        &[(TRIGGER, "spec.triggers[0].template.argoWorkflow.source.resource.spec.arguments.parameters[2].name", "parameter \"name\" is not declared by WorkflowTemplate secret-handover")],
    );
}

#[test]
fn an_unknown_field_in_the_submitted_workflow() {
    let found = check_after(|t| {
        let spec = at(
            t.doc_mut("Sensor", "bootstrap-handover"),
            "/spec/triggers/0/template/argoWorkflow/source/resource/spec",
        );
        spec.as_object_mut()
            .unwrap()
            .insert("workflowTemplate".into(), json!({"name": "x"}));
    });
    assert_exactly(
        &found,
        &[(
            TRIGGER,
            "spec.triggers[0].template.argoWorkflow.source.resource.spec.workflowTemplate",
            "unknown field \"workflowTemplate\": the full CRD",
        )],
    );
}

#[test]
fn a_sensor_depending_on_a_missing_event() {
    let found = check_after(|t| {
        *at(
            t.doc_mut("Sensor", "bootstrap-handover"),
            "/spec/dependencies/0/eventName",
        ) = json!("bootstrp");
    });
    assert_exactly(
        &found,
        &[(
            TRIGGER,
            "spec.dependencies[0].eventName",
            "EventSource bootstrap-secrets defines no event \"bootstrp\"",
        )],
    );
}

#[test]
fn an_unknown_field_in_an_event_source() {
    let found = check_after(|t| {
        let filter = at(
            t.doc_mut("EventSource", "bootstrap-secrets"),
            "/spec/resource/bootstrap/filter",
        );
        let v = filter
            .as_object_mut()
            .unwrap()
            .remove("afterStart")
            .unwrap();
        filter
            .as_object_mut()
            .unwrap()
            .insert("afterstart".into(), v);
    });
    assert_exactly(
        &found,
        &[(
            TRIGGER,
            "spec.resource.bootstrap.filter.afterstart",
            "unknown field \"afterstart\": argo-events",
        )],
    );
}

#[test]
fn an_external_secret_with_a_wrong_enum_value_or_unknown_field() {
    let found = check_after(|t| {
        *at(
            t.doc_mut("ExternalSecret", "db"),
            "/spec/data/1/remoteRef/decodingStrategy",
        ) = json!("base64");
    });
    assert_exactly(
        &found,
        &[(
            "templates/eso/external-secret-example.yaml",
            "spec.data[1].remoteRef.decodingStrategy",
            "full CRD externalsecrets.external-secrets.io",
        )],
    );
    let found = check_after(|t| {
        let spec = at(t.doc_mut("ExternalSecret", "db"), "/spec")
            .as_object_mut()
            .unwrap();
        let v = spec.remove("refreshInterval").unwrap();
        spec.insert("refreshIntervall".into(), v);
    });
    assert_exactly(
        &found,
        &[(
            "templates/eso/external-secret-example.yaml",
            "spec.refreshIntervall",
            "unknown field \"refreshIntervall\"",
        )],
    );
}

#[test]
fn a_cluster_secret_store_with_a_wrong_enum_value_and_an_unknown_field() {
    let found = check_after(|t| {
        let vault = at(
            t.doc_mut("ClusterSecretStore", "vault"),
            "/spec/provider/vault",
        );
        vault["version"] = json!("v3");
        let k8s = at(vault, "/auth/kubernetes").as_object_mut().unwrap();
        let v = k8s.remove("mountPath").unwrap();
        k8s.insert("mountpath".into(), v);
    });
    let file = "templates/eso/cluster-secret-store.yaml";
    assert_exactly(
        &found,
        &[
            (file, "spec.provider.vault.version", "\"v3\" is not one of \"v1\" or \"v2\" (full CRD clustersecretstores.external-secrets.io)"),
            (file, "spec.provider.vault.auth.kubernetes.mountpath", "unknown field \"mountpath\""),
            (file, "spec.provider.vault.auth.kubernetes", "\"mountPath\" is a required property"),
        ],
    );
}

#[test]
fn an_external_secret_reading_through_a_missing_store() {
    let found = check_after(|t| {
        *at(
            t.doc_mut("ExternalSecret", "db"),
            "/spec/secretStoreRef/kind",
        ) = json!("SecretStore");
    });
    assert_exactly(
        &found,
        &[(
            "templates/eso/external-secret-example.yaml",
            "spec.secretStoreRef",
            "no SecretStore \"vault\"",
        )],
    );
}

#[test]
fn an_external_secret_api_version_the_crd_does_not_serve() {
    let found = check_after(|t| {
        *at(t.doc_mut("ExternalSecret", "db"), "/apiVersion") =
            json!("external-secrets.io/v1beta1");
    });
    assert_exactly(&found, &[("templates/eso/external-secret-example.yaml", "apiVersion", "is not served by the CRD externalsecrets.external-secrets.io (served: external-secrets.io/v1)")]);
}

#[test]
fn an_unknown_kind() {
    let found = check_after(|t| {
        let mut doc = t
            .docs
            .iter()
            .find(|d| d.file.ends_with("rbac/service-accounts.yaml"))
            .unwrap()
            .clone();
        doc.value["kind"] = json!("ServiceAcount");
        doc.index = 99;
        t.docs.push(doc);
    });
    assert_exactly(
        &found,
        &[(
            "templates/rbac/service-accounts.yaml",
            "kind",
            "unknown kind v1 ServiceAcount",
        )],
    );
}

#[test]
fn a_kustomization_listing_a_missing_file_or_missing_a_file() {
    let found = check_after(|t| {
        let k = t
            .docs
            .iter_mut()
            .find(|d| d.file == "templates/kustomization.yaml")
            .unwrap();
        *at(&mut k.value, "/resources/7") = json!("workflows/push-internal-secret.yaml");
    });
    assert_exactly(
        &found,
        &[
            (
                "templates/kustomization.yaml",
                "resources[7]",
                "\"workflows/push-internal-secret.yaml\" does not exist",
            ),
            (PUSH, "", "no kustomization lists this file"),
        ],
    );
}

#[test]
fn a_kustomization_images_knob_out_of_step() {
    let found = check_after(|t| {
        let k = t
            .docs
            .iter_mut()
            .find(|d| d.file == "templates/settings/kustomization.yaml")
            .unwrap();
        at(&mut k.value, "/images")
            .as_array_mut()
            .unwrap()
            .remove(3);
        at(&mut k.value, "/images")
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "ghcr.io/secops/rotate-v2", "newTag": "0.2.0"}));
    });
    assert_exactly(
        &found,
        &[
            (
                "templates/settings/kustomization.yaml",
                "images[8].name",
                "image \"ghcr.io/secops/rotate-v2\" is used by no template",
            ),
            (
                ROTATION,
                "spec.templates[0].container.image",
                "image \"ghcr.io/secops/rotate\" is not listed",
            ),
        ],
    );
}

#[test]
fn a_binding_the_namespace_knob_does_not_reach() {
    let found = check_after(|t| {
        let k = t
            .docs
            .iter_mut()
            .find(|d| d.file == "templates/settings/kustomization.yaml")
            .unwrap();
        at(&mut k.value, "/replacements/0/targets/1/reject")
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "secops-rotate"}));
    });
    assert_exactly(
        &found,
        &[(
            "templates/targets/apps/rolebindings.yaml",
            "subjects[0].namespace",
            "RoleBinding secops-rotate is rejected by the settings replacement",
        )],
    );
}

#[test]
fn a_vault_role_the_namespace_knob_does_not_reach() {
    let found = check_after(|t| {
        // Reformatted: the namespace is no longer the 8th '"'-separated piece.
        let r = t.vault_roles.get_mut("secops-rotate").unwrap();
        r.raw = r#"{"token_policies": ["secops-rotate"], "bound_service_account_names": ["secops-rotate"], "bound_service_account_namespaces": ["secops"]}"#.into();
        // Not listed in the replacement.
        let k = t
            .docs
            .iter_mut()
            .find(|d| d.file == "templates/settings/kustomization.yaml")
            .unwrap();
        let paths = at(&mut k.value, "/replacements/0/targets/3/fieldPaths");
        let list = paths.as_array_mut().unwrap();
        list.retain(|p| p != "data.[secops-write-vault.json]");
    });
    assert_exactly(
        &found,
        &[
            (
                "templates/vault/roles/secops-rotate.json",
                "bound_service_account_namespaces",
                "as the 8th",
            ),
            (
                "templates/vault/roles/secops-write-vault.json",
                "bound_service_account_namespaces",
                "does not list data.[secops-write-vault.json]",
            ),
        ],
    );
}

#[test]
fn a_vault_grant_file_missing_from_the_generated_config_map() {
    let found = check_after(|t| {
        let k = t
            .docs
            .iter_mut()
            .find(|d| d.file == "templates/vault/kustomization.yaml")
            .unwrap();
        let files = at(&mut k.value, "/configMapGenerator/0/files");
        files
            .as_array_mut()
            .unwrap()
            .retain(|f| f != "policies/secops-rotate.hcl");
    });
    assert_exactly(
        &found,
        &[(
            "templates/vault/kustomization.yaml",
            "configMapGenerator[0].files",
            "templates/vault/policies/secops-rotate.hcl is missing",
        )],
    );
}

/// The index of the dry-run parameter in a WorkflowTemplate's `spec.arguments.parameters`.
fn dry_run_param(wf: &mut serde_json::Value) -> usize {
    at(wf, "/spec/arguments/parameters")
        .as_array()
        .unwrap()
        .iter()
        .position(|p| p["name"] == "dry-run")
        .expect("a dry-run parameter")
}

#[test]
fn a_workflow_without_the_dry_run_parameter() {
    let found = check_after(|t| {
        let wf = t.doc_mut("WorkflowTemplate", "secret-rotation");
        let i = dry_run_param(wf);
        at(wf, "/spec/arguments/parameters")
            .as_array_mut()
            .unwrap()
            .remove(i);
    });
    assert_exactly(
        &found,
        &[
            (
                ROTATION,
                "spec.arguments.parameters",
                "declares no dry-run parameter",
            ),
            // The CronWorkflow's own dry-run argument now sets an undeclared parameter.
            (
                ROTATION,
                "spec.workflowSpec.arguments.parameters[1].name",
                "parameter \"dry-run\" is not declared by WorkflowTemplate secret-rotation",
            ),
            (
                ROTATION,
                "spec.templates[0].container.args[10]",
                "{{workflow.parameters.dry-run}} is not declared",
            ),
        ],
    );
}

#[test]
fn a_dry_run_parameter_that_defaults_to_true() {
    let found = check_after(|t| {
        let wf = t.doc_mut("WorkflowTemplate", "secret-handover");
        let i = dry_run_param(wf);
        *at(wf, &format!("/spec/arguments/parameters/{i}/value")) = json!("true");
    });
    assert_exactly(
        &found,
        &[(
            HANDOVER,
            "spec.arguments.parameters",
            "the dry-run parameter must default to \"false\", not \"true\"",
        )],
    );
}

#[test]
fn a_step_that_does_not_get_the_dry_run_parameter() {
    let found = check_after(|t| {
        let args = at(
            t.doc_mut("WorkflowTemplate", "secret-handover"),
            &format!("{MARK_CONSUMED}/args"),
        );
        args.as_array_mut()
            .unwrap()
            .retain(|a| !a.as_str().unwrap().starts_with("--dry-run"));
    });
    assert_exactly(
        &found,
        &[(
            HANDOVER,
            "spec.templates[4].container",
            "mark-consumed must get --dry-run={{workflow.parameters.dry-run}}",
        )],
    );
    // A literal value is not the workflow's switch either.
    let found = check_after(|t| {
        let args = at(
            t.doc_mut("WorkflowTemplate", "secret-handover"),
            &format!("{WRITE_VAULT}/args"),
        );
        for a in args.as_array_mut().unwrap() {
            if a.as_str().unwrap().starts_with("--dry-run") {
                *a = json!("--dry-run=false");
            }
        }
    });
    assert_exactly(
        &found,
        &[(
            HANDOVER,
            "spec.templates[3].container",
            "write-vault must get --dry-run={{workflow.parameters.dry-run}}",
        )],
    );
}

#[test]
fn a_vault_step_without_the_ca_parameter() {
    let found = check_after(|t| {
        let env = at(
            t.doc_mut("WorkflowTemplate", "secret-rotation"),
            "/spec/templates/0/container/env",
        )
        .as_array_mut()
        .unwrap();
        env.retain(|e| e["name"] != "VAULT_CACERT");
    });
    assert_exactly(
        &found,
        &[(
            ROTATION,
            "spec.templates[0].container",
            "rotate must get --vault-cacert={{workflow.parameters.vault-cacert}} (or env VAULT_CACERT, or an input parameter vault-cacert), not None",
        )],
    );
}

#[test]
fn a_step_deadline_whose_retries_outlast_the_workflow() {
    let found = check_after(|t| {
        let wf = t.doc_mut("WorkflowTemplate", "secret-handover");
        *at(wf, "/spec/templates/3/activeDeadlineSeconds") = json!(300);
    });
    // 180s x 5 + 150s, 300s x 5 + 150s, 180s x 5 + 150s = 3750s > 3600s.
    assert_exactly(
        &found,
        &[(
            HANDOVER,
            "spec.activeDeadlineSeconds",
            "3600s is shorter than the worst case of handover, 3750s",
        )],
    );
}

#[test]
fn a_step_without_its_own_deadline_flag() {
    let found = check_after(|t| {
        let wf = t.doc_mut("WorkflowTemplate", "secret-rotation");
        at(wf, "/spec/templates/0/container/args")
            .as_array_mut()
            .unwrap()
            .retain(|a| !a.as_str().is_some_and(|a| a.starts_with("--deadline=")));
    });
    assert_exactly(
        &found,
        &[(
            ROTATION,
            "spec.templates[0].container.args",
            "pass --deadline=<N>s (or m)",
        )],
    );
}

#[test]
fn a_step_deadline_flag_the_pod_deadline_does_not_hold() {
    // rotate's pod has 600s; 560s + the 60s margin do not fit. In a containerSet the
    // containers' deadlines add up: 120s + 360s + 400s + 60s > 900s.
    let found = check_after(|t| {
        let wf = t.doc_mut("WorkflowTemplate", "secret-rotation");
        for a in at(wf, "/spec/templates/0/container/args")
            .as_array_mut()
            .unwrap()
        {
            if a.as_str().is_some_and(|a| a.starts_with("--deadline=")) {
                *a = json!("--deadline=560s");
            }
        }
        let batch = t.doc_mut("WorkflowTemplate", "secret-handover-batch");
        for a in at(batch, "/spec/templates/2/containerSet/containers/2/args")
            .as_array_mut()
            .unwrap()
        {
            if a.as_str().is_some_and(|a| a.starts_with("--deadline=")) {
                *a = json!("--deadline=400s");
            }
        }
    });
    assert_exactly(
        &found,
        &[
            (
                BATCH,
                "spec.templates[2].activeDeadlineSeconds",
                "900s does not hold its steps' --deadline (880s) plus 60s",
            ),
            (
                ROTATION,
                "spec.templates[0].activeDeadlineSeconds",
                "600s does not hold its steps' --deadline (560s) plus 60s",
            ),
        ],
    );
}

#[test]
fn a_step_without_a_deadline() {
    let found = check_after(|t| {
        let wf = t.doc_mut("WorkflowTemplate", "secret-rotation");
        at(wf, "/spec/templates/0")
            .as_object_mut()
            .unwrap()
            .remove("activeDeadlineSeconds");
    });
    assert_exactly(
        &found,
        &[(
            ROTATION,
            "spec.templates[0].activeDeadlineSeconds",
            "every step needs a deadline",
        )],
    );
}

#[test]
fn a_vault_step_presenting_a_token_for_another_audience() {
    let found = check_after(|t| {
        let wf = t.doc_mut("WorkflowTemplate", "secret-rotation");
        *at(
            wf,
            "/spec/templates/0/volumes/1/projected/sources/0/serviceAccountToken/audience",
        ) = json!("https://kubernetes.default.svc");
    });
    assert_exactly(
        &found,
        &[(
            ROTATION,
            "spec.templates[0].container.env[3].value",
            "accepts tokens for the audience \"vault\" only; this step presents a token for \"https://kubernetes.default.svc\"",
        )],
    );
}

#[test]
fn a_policy_path_that_follows_no_knob() {
    let found = check_after(|t| {
        let p = t.vault_policies.get_mut("secops-mark-consumed").unwrap();
        p.raw
            .push_str("path \"secret/metadata/*\" {\n  capabilities = [\"read\"]\n}\n");
        p.content.clone_from(&p.raw);
    });
    assert_exactly(
        &found,
        &[(
            "templates/vault/policies/secops-mark-consumed.hcl",
            "path \"secret/metadata/*\"",
            "follows no knob of settings/",
        )],
    );
}

#[test]
fn a_policy_edit_that_moves_its_paths_away_from_the_knobs() {
    let found = check_after(|t| {
        // One more capability: every later piece of the file moves by two.
        let p = t.vault_policies.get_mut("secops-push-secret").unwrap();
        p.raw = p
            .raw
            .replacen("[\"create\", ", "[\"list\", \"create\", ", 1);
        p.content.clone_from(&p.raw);
    });
    // The replacement now hits "patch" instead of the metadata path, and the path moved.
    assert_exactly(
        &found,
        &[
            (
                "templates/settings/kustomization.yaml",
                "replacements[4].targets[2]",
                "piece 9 of secops-push-secret.hcl is Some(\"update\"), not a path",
            ),
            (
                "templates/vault/policies/secops-push-secret.hcl",
                "path \"secret/metadata/internal/*\"",
                "follows no knob",
            ),
        ],
    );
}
