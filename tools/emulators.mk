# The object-store emulators the copier's gs:// and az:// tests run against, part of `make tools`:
# - gcs-emulator: tools/gcs-emulator, our Go program around fake-gcs-server's library that adds
#   the XML API object_store speaks (object PUT with metadata, multipart, copy, listing);
# - Azurite: Azure Storage's emulator, from npm, installed with `npm ci` from the pinned lock.
# Both are keyed by version (a second run does nothing) and built into a temporary name first.

GCS_EMULATOR := $(TOOLS_DIR)/gcs-emulator-$(FAKE_GCS_VERSION)/gcs-emulator
AZURITE := $(TOOLS_DIR)/azurite-$(AZURITE_VERSION)/node_modules/.bin/azurite-blob
NPM ?= npm

tools: $(GCS_EMULATOR) $(AZURITE)

$(GCS_EMULATOR): tools/gcs-emulator/go.mod tools/gcs-emulator/go.sum tools/gcs-emulator/*.go
	@grep -qE '^require github.com/fsouza/fake-gcs-server $(FAKE_GCS_VERSION)$$' tools/gcs-emulator/go.mod || \
	  { echo "tools/gcs-emulator/go.mod does not pin fake-gcs-server $(FAKE_GCS_VERSION) (tools/versions.mk)" >&2; exit 1; }
	@echo "tools: building gcs-emulator (fake-gcs-server $(FAKE_GCS_VERSION))"
	@mkdir -p $(@D)
	@start=$$(date +%s); cd tools/gcs-emulator && $(GO_ENV) $(GO) build -mod=readonly $(GO_FLAGS) \
	  -ldflags='-s -w' -o $@.partial . && mv $@.partial $@ && \
	  echo "tools: built $@ in $$(( $$(date +%s) - start ))s"
	@echo "tools: gcs-emulator: $@"

# npm ci installs exactly the lock; the folder is renamed into place only once it is complete.
$(AZURITE): tools/azurite/package.json tools/azurite/package-lock.json
	@grep -q '"azurite": "$(AZURITE_VERSION)"' tools/azurite/package.json || \
	  { echo "tools/azurite/package.json does not pin azurite $(AZURITE_VERSION) (tools/versions.mk)" >&2; exit 1; }
	@command -v $(NPM) >/dev/null || { echo "tools: npm is missing: install Node.js (for Azurite, the az:// tests' emulator)" >&2; exit 1; }
	@echo "tools: installing Azurite $(AZURITE_VERSION) from npm"
	@rm -rf $(TOOLS_DIR)/azurite-$(AZURITE_VERSION).partial && mkdir -p $(TOOLS_DIR)/azurite-$(AZURITE_VERSION).partial
	@cp tools/azurite/package.json tools/azurite/package-lock.json $(TOOLS_DIR)/azurite-$(AZURITE_VERSION).partial/
	@cd $(TOOLS_DIR)/azurite-$(AZURITE_VERSION).partial && \
	  $(NPM) ci --no-audit --no-fund --loglevel=error >/dev/null && \
	  rm -rf $(TOOLS_DIR)/azurite-$(AZURITE_VERSION) && \
	  mv $(TOOLS_DIR)/azurite-$(AZURITE_VERSION).partial $(TOOLS_DIR)/azurite-$(AZURITE_VERSION)
	@echo "tools: azurite: $@"
