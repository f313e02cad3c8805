//! Flows: compiling a definition into elements (with the checks that need the element types
//! and, on activation, the account), deploying, lifecycle changes, and analytics per
//! element. Loading the saved flows is in `saved.rs`.

use super::*;

impl Engine {
    /// Checks a flow completely (structure, element types, configuration, exits) and builds
    /// it. `source_name` (a file name) prefixes every issue. An active flow also gets the
    /// activation checks that look at the account (chatbots, Answers).
    pub async fn compile(
        &self,
        def: FlowDef,
        source_name: &str,
    ) -> Result<CompiledFlow, FlowError> {
        let activate = def.status == FlowStatus::Active;
        self.compile_as(def, source_name, activate).await
    }

    pub(super) async fn compile_as(
        &self,
        def: FlowDef,
        source_name: &str,
        activate: bool,
    ) -> Result<CompiledFlow, FlowError> {
        let mut compiled = self.build(def, source_name)?;
        let (errors, warnings) = self.target_issues(&compiled);
        compiled.warnings.extend(warnings);
        if !errors.is_empty() {
            return Err(FlowError::Invalid {
                source_name: source_name.to_owned(),
                issues: errors,
            });
        }
        if activate {
            let issues = compiled.activation_issues().await;
            if !issues.is_empty() {
                return Err(FlowError::Invalid {
                    source_name: source_name.to_owned(),
                    issues,
                });
            }
        } else if compiled.def.status == FlowStatus::Draft {
            // What would stop its activation, said while it is being written.
            let issues = compiled.activation_issues().await;
            compiled.warnings.extend(issues);
        }
        Ok(compiled)
    }

    /// What is wrong with the flows the elements enter participants into, as errors (a
    /// target that can never take them) and warnings (one that cannot now). Checked when a
    /// flow is validated or deployed, not when a saved one is loaded: its participants carry
    /// on, leaving by failover.
    fn target_issues(&self, flow: &CompiledFlow) -> (Vec<Issue>, Vec<Issue>) {
        let (mut errors, mut warnings) = (Vec::new(), Vec::new());
        for (i, el) in flow.def.elements.iter().enumerate() {
            let Some(node) = flow.nodes.get(&el.id) else {
                continue;
            };
            let path = format!("elements[{i}].config.flow");
            let element = format!("(element {:?})", el.id);
            for target in node.element.flows_entered() {
                let deployed = self.flow(&target).ok();
                let def = if target == flow.def.id {
                    &flow.def
                } else if let Some(f) = &deployed {
                    &f.def
                } else {
                    warnings.push(Issue::new(
                        &path,
                        format!(
                            "{element} flow {target:?} is not deployed; until it is, participants leave by failover"
                        ),
                    ));
                    continue;
                };
                if !def
                    .entry_points
                    .iter()
                    .any(|e| e.kind == EntryKind::ExistingFlow)
                {
                    errors.push(Issue::new(
                        &path,
                        format!(
                            "{element} flow {target:?} has no existing-flow entry point, so nobody can be added to it; add {{\"type\": \"existing-flow\", \"start\": \"<element id>\"}} to its entry_points"
                        ),
                    ));
                } else if def.status != FlowStatus::Active && target != flow.def.id {
                    warnings.push(Issue::new(
                        &path,
                        format!(
                            "{element} flow {target:?} is {}; until it is active, participants leave by failover",
                            def.status.as_str()
                        ),
                    ));
                }
            }
        }
        (errors, warnings)
    }

    /// The checks that need only the flow and the element types, and the built elements.
    pub(super) fn build(&self, def: FlowDef, source_name: &str) -> Result<CompiledFlow, FlowError> {
        let mut issues = def.check_structure();
        let mut warnings = Vec::new();
        let mut nodes = HashMap::new();
        for (i, el) in def.elements.iter().enumerate() {
            let (type_name, ty) = match self.inner.types.resolve(&el.kind) {
                Ok(t) => t,
                Err(message) => {
                    issues.push(Issue::new(format!("elements[{i}].type"), message));
                    continue;
                }
            };
            let built = ty.build(el);
            let declared = match &built {
                Ok(element) => element.exits(),
                Err(_) => ty.known_exits().unwrap_or_default(),
            };
            let check_exits = built.is_ok() || ty.known_exits().is_some();
            if let Err(found) = &built {
                issues.extend(found.iter().map(|is| Issue {
                    path: format!("elements[{i}].{}", is.path),
                    message: format!("(element {:?}) {}", el.id, is.message),
                }));
            }
            for exit in el.exits.keys() {
                if check_exits && !declared.contains(exit) {
                    issues.push(Issue::new(
                        format!("elements[{i}].exits.{exit}"),
                        format!(
                            "element {:?} ({type_name}) has no exit {exit:?}; its exits: {}",
                            el.id,
                            if declared.is_empty() {
                                "none".to_owned()
                            } else {
                                declared.join(", ")
                            }
                        ),
                    ));
                }
            }
            if let Ok(element) = built {
                warnings.extend(element.warnings().into_iter().map(|w| Issue {
                    path: format!("elements[{i}].{}", w.path),
                    message: format!("(element {:?}) {}", el.id, w.message),
                }));
                nodes.insert(
                    el.id.clone(),
                    Node {
                        type_name,
                        ty,
                        element,
                        exits: el.exits.clone(),
                    },
                );
            }
        }
        if issues.is_empty() {
            Ok(CompiledFlow {
                def,
                // Set by whoever knows it (deploying, loading).
                version: 0,
                warnings,
                nodes,
            })
        } else {
            Err(FlowError::Invalid {
                source_name: source_name.to_owned(),
                issues,
            })
        }
    }

    /// Validates, saves (so another engine on the same store can resume its participants)
    /// and puts a flow in use. A definition that differs from the deployed one (in more than
    /// its status) is a new version: new participants enter it, and those already inside
    /// carry on in the version they entered (see [`Engine::move_to_current`]). The same
    /// definition again keeps its version.
    pub async fn deploy(
        &self,
        def: FlowDef,
        source_name: &str,
    ) -> Result<Arc<CompiledFlow>, EngineError> {
        let text = serde_json::to_string(&def).expect("flow definitions serialize");
        let mut compiled = self.compile(def, source_name).await?;
        let id = compiled.def.id.clone();
        // The version deployed now: this engine's, or the store's for a flow it did not load
        // (one that failed to load, say).
        let deployed = match self.flow(&id) {
            Ok(current) => Some((current.version, Some(current.def.clone()))),
            Err(_) => self
                .inner
                .store
                .flows()
                .await?
                .into_iter()
                .find(|f| f.id == id)
                .map(|saved| {
                    let def = FlowDef::parse(&saved.definition, source_name).ok();
                    (saved.version, def)
                }),
        };
        compiled.version = match deployed {
            None => 1,
            Some((version, Some(mut was))) => {
                was.status = compiled.def.status;
                if was == compiled.def {
                    version
                } else {
                    version + 1
                }
            }
            Some((version, None)) => version + 1,
        };
        let compiled = Arc::new(compiled);
        self.inner
            .store
            .save_flow(&id, compiled.version, &text)
            .await?;
        self.forget_earlier(&id);
        self.unbuilt().remove(&id);
        self.inner
            .flows
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, compiled.clone());
        Ok(compiled)
    }

    /// Drops the earlier versions built for a flow (they take the flow's status, which
    /// changed); they are built again when next needed.
    pub(super) fn forget_earlier(&self, flow_id: &str) {
        self.inner
            .earlier
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(id, _), _| id != flow_id);
    }

    /// The version of its flow a participant runs on: the current one, or an earlier one,
    /// built from the store when first needed. An earlier version has the flow's current
    /// status (pausing or canceling a flow holds all its versions).
    pub(super) async fn flow_of(
        &self,
        p: &ParticipantState,
    ) -> Result<Arc<CompiledFlow>, EngineError> {
        self.flow_at(&p.flow_id, p.flow_version).await
    }

    /// A version of a flow (0: the current one), built from the store when first needed.
    pub async fn flow_at(
        &self,
        flow_id: &str,
        version: u32,
    ) -> Result<Arc<CompiledFlow>, EngineError> {
        let current = self.flow(flow_id)?;
        if version == current.version || version == 0 {
            return Ok(current);
        }
        let key = (flow_id.to_owned(), version);
        if let Some(built) = self
            .inner
            .earlier
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(built.clone());
        }
        let source = format!("flow {flow_id:?} version {version}");
        let text = self
            .inner
            .store
            .flow_version(flow_id, version)
            .await?
            .ok_or_else(|| EngineError::UnknownVersion {
                id: flow_id.to_owned(),
                version,
                current: current.version,
            })?;
        let mut def = FlowDef::parse(&text, &source)?;
        def.status = current.def.status;
        let mut built = self.build(def, &source)?;
        built.version = version;
        let built = Arc::new(built);
        self.inner
            .earlier
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, built.clone());
        Ok(built)
    }

    /// Moves the participants waiting or queued in earlier versions of a flow to its current
    /// version, where they continue at the same element. One whose element is not in the
    /// current version, or has another type there, stays where it is, with why.
    pub async fn move_to_current(&self, flow_id: &str) -> Result<Moved, EngineError> {
        let current = self.flow(flow_id)?;
        let mut moved = Moved {
            version: current.version,
            ..Moved::default()
        };
        for id in self
            .inner
            .store
            .participants_of(flow_id, &[Status::Waiting, Status::Queued])
            .await?
        {
            let Some(p) = self.inner.store.participant(&id).await? else {
                continue;
            };
            if p.flow_version == current.version {
                continue;
            }
            let at = p.current.as_deref().unwrap_or_default();
            let before = self.flow_of(&p).await?;
            let kind = |f: &CompiledFlow| {
                f.def
                    .elements
                    .iter()
                    .find(|e| e.id == at)
                    .map(|e| e.kind.clone())
            };
            let why = match (kind(&before), kind(&current)) {
                (_, None) => Some(format!(
                    "element {at:?} is not in version {}",
                    current.version
                )),
                (Some(was), Some(now)) if was != now => Some(format!(
                    "element {at:?} is {was} in version {} and {now} in version {}",
                    p.flow_version, current.version
                )),
                _ => None,
            };
            match why {
                Some(why) => moved.stayed.push(Stayed {
                    participant: id,
                    version: p.flow_version,
                    reason: why,
                }),
                None if self
                    .inner
                    .store
                    .set_flow_version(&id, current.version)
                    .await? =>
                {
                    moved.moved.push(id)
                }
                None => moved.stayed.push(Stayed {
                    participant: id,
                    version: p.flow_version,
                    reason: "it started running meanwhile; ask again".into(),
                }),
            }
        }
        Ok(moved)
    }

    /// Ids of the paused flows, whose participants are held where they are.
    pub(super) fn paused_flows(&self) -> Vec<String> {
        self.inner
            .flows
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|f| f.def.status == FlowStatus::Paused)
            .map(|f| f.def.id.clone())
            .collect()
    }

    /// Every deployed flow, as built now.
    pub fn compiled_flows(&self) -> Vec<Arc<CompiledFlow>> {
        self.inner
            .flows
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Builds a deployed flow again from its definition, so that its element types resolve
    /// anew (a plugin loaded since takes over from the version it replaces). Steps already
    /// running finish on the flow as it was; the next ones run on the new build. Nothing is
    /// saved: the definition is unchanged. `Ok(false)` when the flow changed meanwhile (it
    /// was redeployed or its status changed, and was built then).
    pub fn rebuild(&self, flow_id: &str) -> Result<bool, EngineError> {
        let before = self.flow(flow_id)?;
        let source = format!("flow {flow_id:?}");
        let mut rebuilt = self.build(before.def.clone(), &source)?;
        rebuilt.version = before.version;
        // Earlier versions are built again too, when next needed.
        self.forget_earlier(flow_id);
        let mut flows = self.inner.flows.write().unwrap_or_else(|e| e.into_inner());
        match flows.get(flow_id) {
            Some(now) if Arc::ptr_eq(now, &before) => {
                flows.insert(flow_id.to_owned(), Arc::new(rebuilt));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    pub(super) fn flow(&self, id: &str) -> Result<Arc<CompiledFlow>, EngineError> {
        self.inner
            .flows
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| EngineError::UnknownFlow(id.to_owned()))
    }

    /// Changes a flow's lifecycle status. Activating runs the activation checks; canceling
    /// stops the participants waiting in it (with a journey entry).
    pub async fn set_flow_status(&self, flow_id: &str, to: FlowStatus) -> Result<(), EngineError> {
        let flow = self.flow(flow_id)?;
        let from = flow.def.status;
        if !from.can_become(to) {
            return Err(EngineError::StatusChange {
                id: flow_id.to_owned(),
                from: from.as_str(),
                to: to.as_str(),
            });
        }
        let mut def = flow.def.clone();
        def.status = to;
        let source = format!("flow {flow_id:?}");
        // Resuming a paused flow is not activating it: it was checked then.
        let activating = to == FlowStatus::Active && from == FlowStatus::Draft;
        let mut compiled = self.compile_as(def, &source, activating).await?;
        compiled.version = flow.version;
        let text = serde_json::to_string(&compiled.def).expect("flow definitions serialize");
        self.inner
            .store
            .save_flow(flow_id, flow.version, &text)
            .await?;
        self.forget_earlier(flow_id);
        self.inner
            .flows
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(flow_id.to_owned(), Arc::new(compiled));
        if to == FlowStatus::Canceled {
            for id in self
                .inner
                .store
                .participants_of(flow_id, &[Status::Waiting, Status::Queued])
                .await?
            {
                let claim = self
                    .inner
                    .store
                    .claim(&id, &self.inner.owner, self.now(), self.lease_expiry())
                    .await?;
                let Some(claim) = claim else {
                    continue;
                };
                let mut p = self.participant(&id).await?;
                let mut entry = self.entry(&p, p.current.as_deref().unwrap_or("?"), "engine");
                entry.error = Some(format!("flow {flow_id:?} was canceled"));
                p.status = Status::Canceled;
                p.waiting_until = None;
                p.wait_key = None;
                p.current = None;
                p.steps += 1;
                self.inner
                    .store
                    .record_step(&claim.lease, &p, &entry, StepWrite::default())
                    .await?;
                self.announce(&p);
            }
        }
        Ok(())
    }

    /// A deployed flow's definition.
    pub fn flow_def(&self, flow_id: &str) -> Result<FlowDef, EngineError> {
        Ok(self.flow(flow_id)?.def.clone())
    }

    /// Ids of the deployed flows.
    pub fn flow_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .inner
            .flows
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        ids.sort();
        ids
    }

    /// Per element of a flow's current version, in definition order: participants entered,
    /// left per exit, and waiting now.
    pub async fn analytics(&self, flow_id: &str) -> Result<Vec<ElementAnalytics>, EngineError> {
        let version = self.flow(flow_id)?.version;
        self.version_analytics(flow_id, version).await
    }

    /// [`Engine::analytics`] of one version of a flow.
    pub async fn version_analytics(
        &self,
        flow_id: &str,
        version: u32,
    ) -> Result<Vec<ElementAnalytics>, EngineError> {
        let flow = self.flow_at(flow_id, version).await?;
        let mut counts = self
            .inner
            .store
            .element_counts(flow_id, Some(version))
            .await?;
        Ok(flow
            .def
            .elements
            .iter()
            .map(|el| ElementAnalytics {
                element_id: el.id.clone(),
                element_type: flow
                    .nodes
                    .get(&el.id)
                    .map_or_else(|| el.kind.clone(), |n| n.type_name.clone()),
                counts: counts.remove(&el.id).unwrap_or_default(),
            })
            .collect())
    }
}
